//go:build unix

package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/daemon"
)

// TestServeAndTokenViaDaemon runs `mailoauth serve` in-process against the
// emulator and checks that `mailoauth token` is answered by it (the
// daemon's request counter moves; Graph is refreshed once, by the daemon),
// that errors keep their exit codes, that a second daemon is refused, that
// SIGHUP asks for a rescan, and that after SIGTERM the socket is gone and
// `token` reads the store.
func TestServeAndTokenViaDaemon(t *testing.T) {
	e := newEmuEnv(t)
	t.Setenv("MAILOAUTH_NO_DAEMON", "")
	e.login("dev")
	dir, err := os.MkdirTemp("", "mos") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[serve]\nsocket = \"" + sock + "\"\nmetrics = \"127.0.0.1:0\"\n")
	f.Close()

	hupSeen := make(chan struct{})
	var once sync.Once
	log := watchWriter{onWrite: func(all string) {
		if strings.Contains(all, "SIGHUP") {
			once.Do(func() { close(hupSeen) })
		}
	}}
	g := &Globals{ConfigPath: e.cfg, In: strings.NewReader(""), Out: io.Discard, ErrOut: &log}
	// SIGTERM stops it, as systemd does; Main registers the same way.
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	ready := make(chan *daemon.Daemon, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, &ServeOptions{G: g, ShutdownTimeout: 5 * time.Second, Ready: func(d *daemon.Daemon) { ready <- d }})
	}()
	var d *daemon.Daemon
	select {
	case d = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, log.String())
	}
	requests := func() string {
		t.Helper()
		resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, `mailoauth_socket_requests_total{outcome="ok"}`) {
				return strings.TrimSpace(strings.TrimPrefix(line, `mailoauth_socket_requests_total{outcome="ok"}`))
			}
		}
		return "0"
	}

	e.srv.ResetCounts()
	imap := e.token("dev")
	sasl := e.token("dev", "--sasl", "xoauth2")
	graph := e.token("dev", "--resource", "graph")
	if got := requests(); got != "3" {
		t.Errorf("daemon answered %s token requests, want 3", got)
	}
	raw, err := base64.StdEncoding.DecodeString(sasl)
	if err != nil || string(raw) != "user=alice@contoso.com\x01auth=Bearer "+imap+"\x01\x01" {
		t.Errorf("SASL string via the daemon = %q (%v)", raw, err)
	}
	if counts := e.srv.Counts(); counts["token:refresh_token"] != 1 {
		t.Errorf("token endpoint counts %v: want one refresh (Graph)", counts)
	}
	if gr, ok := e.srv.Lookup(graph); !ok || gr.Audience != "https://graph.microsoft.com" {
		t.Errorf("graph token via the daemon: %+v %v", gr, ok)
	}

	// Never logged in: exit 4, the command to run on stderr.
	if r := e.exec(nil, nil, "token", "dev-device"); r.code != ExitRelogin || !strings.Contains(r.err, "mailoauth login dev-device") {
		t.Errorf("token of an account never logged in: exit %d, stderr %q", r.code, r.err)
	}
	// A second daemon on the same socket is refused.
	if r := e.exec(nil, nil, "serve"); r.code != ExitError || !strings.Contains(r.err, "another mailoauth daemon is running") {
		t.Errorf("second serve: exit %d, stderr %q", r.code, r.err)
	}

	// SIGHUP asks for a rescan (serve has registered for it by Ready).
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case <-hupSeen:
	case <-time.After(10 * time.Second):
		t.Errorf("SIGHUP not seen:\n%s", log.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	// No daemon: the store path gives the same cached token.
	if again := e.token("dev"); again != imap {
		t.Errorf("token without the daemon differs from the daemon's")
	}
	if strings.Contains(log.String(), imap) || strings.Contains(log.String(), graph) {
		t.Errorf("the daemon logged a token")
	}
}
