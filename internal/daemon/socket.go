package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"
)

// listenSocket binds the daemon's socket at path:
//
//   - its directory is created 0700 (an existing one open to others is
//     reported, not changed: it may be a shared folder the user chose);
//   - a lock file beside the socket, held for the daemon's life, makes two
//     daemons starting at once agree on one winner;
//   - a daemon answering on the socket means ErrAlreadyRunning; a socket
//     nobody answers on is a stale one from a crash and is removed; any
//     other kind of file there is left alone and refused;
//   - the socket is made 0600. Between bind and chmod it has the umask's
//     mode, but its directory already keeps others out.
func listenSocket(path string, log *slog.Logger) (net.Listener, *os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create the socket directory: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the socket directory is open to other users; the socket itself is 0600", "dir", dir, "mode", fi.Mode().Perm().String())
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (net.Listener, *os.File, error) {
		unlockFile(lock)
		return nil, nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fail(fmt.Errorf("%s exists and is not a socket: remove it or set another [serve] socket", path))
		}
		c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return fail(fmt.Errorf("%w on %s", ErrAlreadyRunning, path))
		}
		log.Info("removing a stale daemon socket", "socket", path)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("remove the stale socket: %w", err))
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", path, err))
	}
	// Close removes the socket file (the default for a socket Listen bound).
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fail(fmt.Errorf("restrict the socket to its owner: %w", err))
	}
	return ln, lock, nil
}
