// Package paths says where mailoauth keeps its files: the config file, the
// state (token store, key file) and the runtime directory (daemon socket).
//
// It follows the XDG base directory spec on Unix-likes and the platform's
// own conventions elsewhere (via os.UserConfigDir). The standard library has
// no XDG_STATE_HOME / XDG_RUNTIME_DIR helper, hence these few lines.
//
//	dir, err := paths.StateDir() // $MAILOAUTH_STATE_DIR, else $XDG_STATE_HOME/mailoauth, else ~/.local/state/mailoauth
package paths

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// App is the folder name used under every base directory.
const App = "mailoauth"

// ConfigFileName is the name of the config file inside ConfigDir.
const ConfigFileName = "config.toml"

// Environment variables that override the defaults. Tests set them so they
// never touch the user's real files.
const (
	EnvConfig   = "MAILOAUTH_CONFIG"    // the config file itself
	EnvStateDir = "MAILOAUTH_STATE_DIR" // the state directory itself
)

// ConfigDir is $XDG_CONFIG_HOME/mailoauth on Linux (~/.config/mailoauth when
// unset), and the platform's config folder elsewhere.
func ConfigDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w", err)
	}
	return filepath.Join(base, App), nil
}

// DefaultConfigFile is the config file used when neither --config nor
// $MAILOAUTH_CONFIG names one.
func DefaultConfigFile() (string, error) {
	dir, err := ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, ConfigFileName), nil
}

// ConfigFile picks the config file: flag (from --config) if set, else
// $MAILOAUTH_CONFIG, else DefaultConfigFile. The result is absolute, so
// relative paths inside the file resolve against a stable folder.
func ConfigFile(flag string) (string, error) {
	p := flag
	if p == "" {
		p = os.Getenv(EnvConfig)
	}
	if p == "" {
		return DefaultConfigFile()
	}
	p, err := ExpandHome(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// StateDir holds the token store and its key file: $MAILOAUTH_STATE_DIR,
// else $XDG_STATE_HOME/mailoauth, else ~/.local/state/mailoauth. State is not
// cache: losing it means logging in again, so it does not go under
// os.UserCacheDir.
func StateDir() (string, error) {
	if d := os.Getenv(EnvStateDir); d != "" {
		d, err := ExpandHome(d)
		if err != nil {
			return "", err
		}
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, App), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w (set %s)", err, EnvStateDir)
	}
	return filepath.Join(home, ".local", "state", App), nil
}

// RuntimeDir holds the daemon's socket: $XDG_RUNTIME_DIR/mailoauth (a
// per-user tmpfs the system cleans at logout), else the state directory.
func RuntimeDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, App), nil
	}
	return StateDir()
}

// EnsureDir creates dir (and its parents) readable by the owner only.
// Tokens and keys live there, so an existing directory open to others is
// tightened too.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("create %s: not a directory", dir)
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		// A sticky folder (/tmp) is shared by design: taking it over
		// would break every other user of it, and tokens there are not
		// private anyway.
		return fmt.Errorf("%s is a shared folder (sticky bit, like /tmp): name a private folder of your own", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restrict %s to its owner: %w", dir, err)
		}
	}
	return nil
}

// PrivateDir creates dir (and its parents) mode 0700, for the token store
// and its key file. When dir is the state directory (StateDir), it is
// EnsureDir: an existing state directory open to other users is tightened
// too. Any other existing folder keeps its mode: the user named it (store =
// "sqlite:/srv/…", a library caller's path) and may share it on purpose.
func PrivateDir(dir string) error {
	if state, err := StateDir(); err == nil && sameDir(state, dir) {
		return EnsureDir(dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

// sameDir reports whether a and b name the same folder: equal once cleaned
// and made absolute, or the same file when both exist (a symlinked home).
func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// ExpandHome replaces a leading "~/" (or a lone "~") with the home
// directory; other paths come back unchanged.
func ExpandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") && !strings.HasPrefix(p, "~"+string(filepath.Separator)) {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}
	if home == "" {
		return "", errors.New("expand ~: no home directory")
	}
	return filepath.Join(home, p[1:]), nil
}

// Resolve makes p absolute: "~/" expands to the home directory and a
// relative path is taken from base (the config file's folder).
func Resolve(base, p string) (string, error) {
	p, err := ExpandHome(p)
	if err != nil {
		return "", err
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p), nil
	}
	return filepath.Join(base, p), nil
}
