package daemon

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/tokens"
)

// TestTokenOverSocket: the daemon hands out the cached token without
// calling the token endpoint, refreshes an expired one exactly once
// through the real OAuth client, and maps failures onto the errors the
// store path gives.
func TestTokenOverSocket(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	r := e.start(Options{ConfigFile: e.cfg.File})
	r.client.Config = e.cfg.File
	ctx := t.Context()

	tok, user, err := r.client.Token(ctx, "work", "imap")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{tok.AccessToken, tok.TokenType, user}; !cmp.Equal(got, []string{"at-0", "Bearer", "alice@example.com"}) {
		t.Errorf("token, type, user = %q", got)
	}
	if n := e.idp.Hits(); n != 0 {
		t.Errorf("cached token: %d token endpoint calls, want 0", n)
	}

	// The socket is the owner's only, in a directory that is too.
	for path, want := range map[string]fs.FileMode{e.sock: 0o600, filepath.Dir(e.sock): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}

	t.Run("unknown account", func(t *testing.T) {
		_, _, err := r.client.Token(ctx, "nobody", "imap")
		if !errors.Is(err, config.ErrNoAccount) {
			t.Errorf("err = %v, want config.ErrNoAccount", err)
		}
	})
	t.Run("other config file", func(t *testing.T) {
		c := &Client{Socket: e.sock, Config: "/elsewhere/config.toml"}
		if _, _, err := c.Token(ctx, "work", "imap"); !errors.Is(err, ErrNoDaemon) {
			t.Errorf("err = %v, want ErrNoDaemon", err)
		}
	})
	t.Run("missing account parameter", func(t *testing.T) {
		_, _, err := r.client.Token(ctx, "", "imap")
		if err == nil || errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), "account parameter") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("never logged in", func(t *testing.T) {
		_, _, err := r.client.Token(ctx, "idle", "imap")
		var re *tokens.ReloginError
		if !errors.As(err, &re) || re.Command != "mailoauth login idle" {
			t.Errorf("err = %v, want a ReloginError naming mailoauth login idle", err)
		}
	})
	t.Run("status", func(t *testing.T) {
		st, err := r.client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.PID != os.Getpid() || st.Socket != e.sock || len(st.Accounts) != 2 {
			t.Errorf("status = %+v", st)
		}
		for _, a := range st.Accounts {
			if strings.Contains(string(a), "at-0") || strings.Contains(string(a), "rt-0") {
				t.Errorf("status holds a token: %s", a)
			}
		}
	})
}

// TestRefreshAndRelogin: an expired cached token is refreshed once for
// several concurrent callers; a refused refresh token gives a
// ReloginError over the socket, and a token refused elsewhere or a
// logout in another process is seen at once.
func TestRefreshAndRelogin(t *testing.T) {
	e := newEnv(t, time.Now().Add(-time.Minute))
	r := e.start(Options{})
	ctx := t.Context()

	errc := make(chan error, 8)
	toks := make(chan string, 8)
	for range 8 {
		go func() {
			tok, _, err := r.client.Token(ctx, "work", "smtp")
			if err == nil {
				toks <- tok.AccessToken
			}
			errc <- err
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	close(toks)
	for at := range toks {
		if at != "at-1" {
			t.Errorf("token %q, want at-1", at)
		}
	}
	if n := e.idp.Hits(); n != 1 {
		t.Errorf("%d token endpoint calls, want 1", n)
	}
	rt, err := tokens.LoadToken(ctx, e.store, "work", tokens.KindRefresh)
	if err != nil || rt.RefreshToken != "rt-1" {
		t.Errorf("stored refresh token %v, %v; want the rotated rt-1", rt, err)
	}

	// A proxy (another process) saw a mail server refuse at-1 and blanked
	// it in the store: the daemon must not hand its copy out again.
	m2, err := account.Open(ctx, e.cfg, account.Options{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := m2.Account("work")
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Invalidate(ctx, "imap", "at-1"); err != nil {
		t.Fatal(err)
	}
	if tok, _, err := r.client.Token(ctx, "work", "imap"); err != nil || tok.AccessToken != "at-2" {
		t.Fatalf("after the token was refused elsewhere: %v, %v; want the refreshed at-2", tok, err)
	}

	// Logout elsewhere: the daemon must not keep handing out its copy.
	if err := e.store.Delete(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	_, _, err = r.client.Token(ctx, "work", "imap")
	if !errors.Is(err, tokens.ErrReloginRequired) {
		t.Fatalf("after logout: err = %v, want ErrReloginRequired", err)
	}

	// A new login whose token has expired, and a server refusing it.
	e.idp.set(func(f *fakeIdP) { f.fail = "invalid_grant" })
	e.login("rt-9", "at-9", time.Now().Add(-time.Minute))
	_, _, err = r.client.Token(ctx, "work", "imap")
	var re *tokens.ReloginError
	if !errors.As(err, &re) || re.Account != "work" || re.Command != "mailoauth login work" || !strings.Contains(re.Reason, "invalid_grant") {
		t.Fatalf("err = %#v, want a ReloginError for work with the server's reason", err)
	}
	if strings.Contains(err.Error(), "rt-9") || strings.Contains(err.Error(), "at-9") {
		t.Errorf("error holds a token: %v", err)
	}
}

// TestSecondDaemonRefused: a daemon answering on the socket keeps a second
// one out, both by its lock and by answering.
func TestSecondDaemonRefused(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	e.start(Options{})
	d2, err := New(Options{Socket: e.sock, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Listen(); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	if _, err := os.Stat(e.sock); err != nil {
		t.Errorf("the first daemon's socket is gone: %v", err)
	}
}

// TestStaleSocket: a socket file left by a crashed daemon is replaced; a
// file of another kind is refused and left alone.
func TestStaleSocket(t *testing.T) {
	dir := shortTemp(t)
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // as after kill -9: the file stays, nobody listens

	d, err := New(Options{Socket: sock, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, []byte("keep me"), 0o600)
	d, _ = New(Options{Socket: plain, Logger: testLogger(t)})
	if err := d.Listen(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep me" {
		t.Errorf("the regular file was changed")
	}
}

func TestOptionsRefused(t *testing.T) {
	long := "/" + strings.Repeat("x", 110) + "/d.sock"
	for name, o := range map[string]Options{
		"no socket":    {},
		"relative":     {Socket: "run/d.sock"},
		"too long":     {Socket: long},
		"non-loopback": {Socket: "/tmp/unused.sock", Metrics: "192.0.2.1:9464"},
		"no port":      {Socket: "/tmp/unused.sock", Metrics: "127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := New(o)
			if err == nil {
				_, err = listenMetrics(o.Metrics, o.MetricsAllowRemote)
			}
			if err == nil {
				t.Errorf("%+v accepted", o)
			}
			_ = d
		})
	}
}

// TestShutdown: a refresh in flight when the daemon is told to stop is
// finished and stored, the request waiting for it is answered, and the
// socket is removed; afterwards the client reports ErrNoDaemon.
func TestShutdown(t *testing.T) {
	e := newEnv(t, time.Now().Add(-time.Minute))
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	e.idp.set(func(f *fakeIdP) { f.block, f.entered = block, entered })
	asked := make(chan struct{}, 1)
	e.wrap = func(a Accounts) Accounts {
		return watchAccounts{a, func(_, resource string) {
			if resource == "imap" { // the socket request; the schedule asks for "mail"
				asked <- struct{}{}
			}
		}}
	}
	r := e.start(Options{ShutdownTimeout: 10 * time.Second})

	got := make(chan error, 1)
	go func() {
		_, _, err := r.client.Token(context.Background(), "work", "imap")
		got <- err
	}()
	<-entered // the refresh is at the token endpoint
	<-asked   // and the request is in the daemon, waiting for it
	stopped := make(chan error, 1)
	go func() { stopped <- r.stop(t) }()
	// Give Serve the stop; it must wait for the refresh rather than return.
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned with a refresh in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(block)
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-got; err != nil {
		t.Errorf("request in flight at shutdown: %v", err)
	}
	if rt, err := tokens.LoadToken(context.Background(), e.store, "work", tokens.KindRefresh); err != nil || rt.RefreshToken != "rt-1" {
		t.Errorf("rotated refresh token not stored: %v %v", rt, err)
	}
	if _, err := os.Stat(e.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	if _, _, err := r.client.Token(context.Background(), "work", "imap"); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("after shutdown: %v, want ErrNoDaemon", err)
	}
}

// TestShutdownBound: a refresh that never ends does not hold the shutdown
// past its bound.
func TestShutdownBound(t *testing.T) {
	e := newEnv(t, time.Now().Add(-time.Minute))
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	e.idp.set(func(f *fakeIdP) { f.block, f.entered = block, entered })
	r := e.start(Options{ShutdownTimeout: 200 * time.Millisecond})
	go r.client.Token(context.Background(), "work", "imap")
	<-entered
	start := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a 200ms bound", took)
	}
	if _, err := os.Stat(e.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	// The abandoned refresh goes on in the background (the refresh engine
	// detaches it so it can store a rotated refresh token); let it end
	// before the store closes and goleak looks.
	close(block)
	waitStored(t, e, "rt-1")
}

// waitStored waits until the store holds refresh token rt (a refresh
// finishing in a goroutine the test cannot join).
func waitStored(t *testing.T, e *env, rt string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err := tokens.LoadToken(context.Background(), e.store, "work", tokens.KindRefresh)
		if err == nil && tok.RefreshToken == rt {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("refresh token %q never stored (last: %v, %v)", rt, tok, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestClientNoDaemon(t *testing.T) {
	dir := shortTemp(t)
	// A hung daemon: it accepts and never answers.
	hung := filepath.Join(dir, "hung.sock")
	ln, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Run("hung", func(t *testing.T) {
		_, _, err := (&Client{Socket: hung, Timeout: 100 * time.Millisecond}).Token(t.Context(), "work", "imap")
		if !errors.Is(err, ErrNoDaemon) {
			t.Errorf("err = %v, want ErrNoDaemon", err)
		}
	})
	for name, sock := range map[string]string{"no file": filepath.Join(dir, "none.sock"), "no path": ""} {
		t.Run(name, func(t *testing.T) {
			_, _, err := (&Client{Socket: sock}).Token(t.Context(), "work", "imap")
			if !errors.Is(err, ErrNoDaemon) {
				t.Errorf("err = %v, want ErrNoDaemon", err)
			}
		})
	}
}

// TestManagerNextRefresh: the daemon sleeps until the refresh engine's own
// time (its jitter included, so daemons sharing a store spread out), which
// lies within the jitter before the token is due.
func TestManagerNextRefresh(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	opts := account.Options{Store: e.store}
	m, err := account.Open(t.Context(), e.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	acc := FromManager(m, opts)
	res, err := acc.Resources(t.Context(), "work")
	if err != nil || len(res) != 1 {
		t.Fatalf("resources %v, %v; want the one logged-in resource", res, err)
	}
	tok, next, err := acc.Token(t.Context(), "work", res[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Account("work")
	if err != nil {
		t.Fatal(err)
	}
	if engine := a.NextRefresh(resourceFor(res[0])); engine.IsZero() || !next.Equal(engine) {
		t.Errorf("daemon wakes at %v, the engine refreshes at %v", next, engine)
	}
	due := tok.Expiry.Add(-tokens.DefaultMargin)
	if next.After(due) || next.Before(due.Add(-time.Minute)) {
		t.Errorf("next refresh %v, want within the jitter before %v", next, due)
	}
}
