package proxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMaxConnections(t *testing.T) {
	for _, tt := range []struct{ proto, greeting, busy string }{
		{"imap", imapGreeting, "* BYE Too many connections, try again later"},
		{"pop3", pop3Greeting, "-ERR [SYS/TEMP] Too many connections, try again later"},
		{"smtp", smtpGreeting, "421 4.3.2 Too many connections, try again later"},
	} {
		t.Run(tt.proto, func(t *testing.T) {
			e := newEnv(t, tt.proto, func(c *Config) { c.MaxConnections = 1 })
			first := e.dial()
			first.run("< " + tt.greeting)
			e.dial().run("< "+tt.busy, "<EOF")
			first.conn.Close()
			// The slot comes back when the first session ends.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c := e.dial()
				l := c.line()
				if l == tt.greeting {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("slot never freed: %q", l)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestMaxConnectionsPerAccount(t *testing.T) {
	e := newEnv(t, "imap", func(c *Config) { c.MaxConnectionsPerAccount = 1 })
	c1 := e.dial()
	c1.run("< "+imapGreeting, "> a LOGIN "+testEmail+" "+quoteIMAP(testPass), "< a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	c2 := e.dial()
	c2.run("< "+imapGreetingKnown, "> a LOGIN "+testEmail+" "+quoteIMAP(testPass), "< a NO [LIMIT] Too many connections for this account")
	c1.run("> b LOGOUT", "< * BYE Logging out", "< b OK Logout completed.", "<EOF")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2.send("a LOGIN " + testEmail + " " + quoteIMAP(testPass) + "\r\n")
		l := c2.line()
		if strings.HasPrefix(l, "a OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account slot never freed: %q", l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIdleTimeoutBeforeLogin(t *testing.T) {
	e := newEnv(t, "imap", func(c *Config) { c.IdleTimeout = 50 * time.Millisecond })
	c := e.dial()
	start := time.Now()
	c.run("< "+imapGreeting, "<EOF")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle client closed after %v", d)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, "imap", nil)
	idle := e.dial()
	idle.run("< " + imapGreeting)
	busy := e.dial()
	busy.run("< "+imapGreeting, "> a LOGIN "+testEmail+" "+quoteIMAP(testPass), "< a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")

	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	// The session before login is closed at once; the logged-in one may
	// finish its work.
	idle.run("<EOF")
	busy.run("> b NOOP", "< b OK NOOP relayed")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a session was running", err)
	default:
	}
	busy.run("> c LOGOUT", "< * BYE Logging out", "< c OK Logout completed.", "<EOF")
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestShutdownBounded(t *testing.T) {
	e := newEnv(t, "imap", nil)
	busy := e.dial()
	busy.run("< "+imapGreeting, "> a LOGIN "+testEmail+" "+quoteIMAP(testPass), "< a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := e.srv.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 logged-in sessions cut") {
		t.Errorf("Shutdown = %v, want context.Canceled and 1 session cut", err)
	}
	busy.run("<EOF")
}

// TestShutdownNothingToCut: a deadline already spent is no failure when no
// logged-in session was left (a proxy with several listeners shares one
// deadline; the quiet ones must not report sessions cut).
func TestShutdownNothingToCut(t *testing.T) {
	e := newEnv(t, "imap", nil)
	idle := e.dial()
	idle.run("< " + imapGreeting)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil (only a session before login, closed at once)", err)
	}
	idle.run("<EOF")
}

func TestUpstreamEndClosesClient(t *testing.T) {
	e := newEnv(t, "pop3", nil)
	c := e.dial()
	c.run("< "+pop3Greeting, "> AUTH PLAIN "+plainIR(testEmail, testPass), "< +OK Logged in")
	e.fake.ln.Close()
	// The fake ends the session on QUIT; the proxy passes that on as a
	// close.
	c.run("> QUIT", "< +OK Logging out.", "<EOF")
}

func TestNewRefusesBadConfig(t *testing.T) {
	base := func() Config {
		return Config{Protocol: "imap", Token: func(context.Context, string, string) (string, error) { return "", nil }, Passwords: OpenPasswordFile("x")}
	}
	for name, mod := range map[string]func(*Config){
		"protocol":         func(c *Config) { c.Protocol = "nntp" },
		"tls without cert": func(c *Config) { c.TLS = TLSStartTLS },
		"tls mode":         func(c *Config) { c.TLS = "ssl" },
		"no token":         func(c *Config) { c.Token = nil },
		"account protocol": func(c *Config) {
			c.Accounts = []Account{{Name: "a", Email: "a@x", Upstream: mustURL(t, "smtps://x.example")}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			mod(&c)
			if _, err := New(c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestPasswordFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", PasswordFileName)
	f := OpenPasswordFile(path)
	if err := f.Verify("work", "anything"); !errors.Is(err, ErrBadPassword) || !errors.Is(err, ErrNoPassword) {
		t.Errorf("Verify with no file = %v, want ErrNoPassword matching ErrBadPassword", err)
	}
	if err := f.Set("work", ""); err == nil {
		t.Error("empty password accepted")
	}
	if err := f.Set("work", "s3cret"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "s3cret") || !strings.Contains(string(data), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("file content:\n%s", data)
	}
	got := map[string]error{}
	for _, p := range []string{"s3cret", "s3cret", "S3cret", "", "s3cret "} {
		got[p] = f.Verify("work", p)
	}
	// The remembered good password skips argon2id; a wrong one never does
	// (a refusal must not be faster for an account that logged in lately).
	before := slowChecks.Load()
	f.Verify("work", "s3cret")
	if n := slowChecks.Load() - before; n != 0 {
		t.Errorf("the remembered password ran argon2id %d times, want 0", n)
	}
	f.Verify("work", "wrong")
	if n := slowChecks.Load() - before; n != 1 {
		t.Errorf("a wrong password after a cached success ran argon2id %d times, want 1", n)
	}
	want := map[string]error{"s3cret": nil, "S3cret": ErrBadPassword, "": ErrBadPassword, "s3cret ": ErrBadPassword}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) })); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
	if err := f.Verify("other", "s3cret"); !errors.Is(err, ErrNoPassword) {
		t.Errorf("another account's password = %v, want ErrNoPassword", err)
	}
	if err := f.Verify("work", "S3cret"); errors.Is(err, ErrNoPassword) {
		t.Errorf("a wrong password = %v, want ErrBadPassword alone", err)
	}
	// A second handle (another process: `mailoauth proxy passwd` while the
	// proxy runs) changes the password; the first sees it.
	g := OpenPasswordFile(path)
	if err := g.Set("work", "new"); err != nil {
		t.Fatal(err)
	}
	if err := g.Set("other", "o"); err != nil {
		t.Fatal(err)
	}
	// Make sure the stamp differs even on coarse file systems.
	future := time.Now().Add(time.Minute)
	os.Chtimes(path, future, future)
	if err := f.Verify("work", "s3cret"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("old password after change = %v", err)
	}
	if err := f.Verify("work", "new"); err != nil {
		t.Errorf("new password = %v", err)
	}
	if ok, _ := f.Has("other"); !ok {
		t.Error("Has(other) = false")
	}
	os.WriteFile(path, []byte(`{"version":1,"accounts":{"work":"$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA"}}`), 0o600)
	os.Chtimes(path, future.Add(time.Minute), future.Add(time.Minute))
	if err := f.Verify("work", "new"); err == nil || errors.Is(err, ErrBadPassword) {
		t.Errorf("corrupt hash = %v, want a check error", err)
	}
}

func TestPasswordFileConcurrent(t *testing.T) {
	f := testPasswords(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			p := testPass
			if i%2 == 1 {
				p = "wrong"
			}
			err := f.Verify("work", p)
			if (i%2 == 0) != (err == nil) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Verify: %v", err)
	}
}

func TestPenalty(t *testing.T) {
	now := time.Unix(0, 0)
	p := newPenalty(func() time.Time { return now })
	var got []time.Duration
	for range 7 {
		got = append(got, p.fail("a"))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	if d := p.fail("b"); d != time.Second {
		t.Errorf("another key = %v", d)
	}
	now = now.Add(penaltyForget + time.Second)
	if d := p.fail("a"); d != time.Second {
		t.Errorf("after a quiet spell = %v, want 1s", d)
	}
	p.fail("a")
	p.ok("a")
	if d := p.fail("a"); d != time.Second {
		t.Errorf("after a success = %v, want 1s", d)
	}
}
