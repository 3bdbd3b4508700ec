package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/proxy"
)

func writeProxyConfig(t *testing.T, upstream string) string {
	t.Helper()
	t.Setenv("MAILOAUTH_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	file := filepath.Join(t.TempDir(), "config.toml")
	doc := fmt.Sprintf(`[accounts.work]
client_id = "x"
email = "alice@example.test"
imap = %q
[accounts.other]
client_id = "y"
email = "bob@example.test"
[proxy.imap]
listen = "127.0.0.1:0"
accounts = ["work"]
`, upstream)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestProxyPasswd(t *testing.T) {
	file := writeProxyConfig(t, "imaps://imap.example.test")
	run := func(stdin string, args ...string) (int, string) {
		var out, errOut bytes.Buffer
		g := &Globals{ConfigPath: file, In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
		return Run(context.Background(), g, append([]string{"--config", file}, args...)), errOut.String()
	}
	if code, msg := run("s3cret\n", "proxy", "passwd", "work"); code != ExitOK || !strings.Contains(msg, "Mail clients log in as alice@example.test") {
		t.Fatalf("passwd = %d: %s", code, msg)
	}
	path := filepath.Join(os.Getenv("MAILOAUTH_STATE_DIR"), proxy.PasswordFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	f := proxy.OpenPasswordFile(path)
	if err := f.Verify("work", "s3cret"); err != nil {
		t.Errorf("stored password does not verify: %v", err)
	}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		code        int
		msg         string
	}{
		{"empty stdin", "", []string{"proxy", "passwd", "work"}, ExitError, "no password on stdin"},
		{"unknown account", "x\n", []string{"proxy", "passwd", "ghost"}, ExitConfig, "ghost"},
		{"no account", "x\n", []string{"proxy", "passwd"}, ExitUsage, "accepts 1 arg"},
		{"too long", strings.Repeat("p", 2000), []string{"proxy", "passwd", "work"}, ExitError, "longer than 1024 bytes"},
		{"not in a proxy", "pw\n", []string{"proxy", "passwd", "other"}, ExitOK, "in no proxy's accounts list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := run(tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, msg, tt.msg)
			}
		})
	}
	if err := f.Verify("work", "s3cret"); err != nil {
		t.Errorf("a failed passwd changed the password: %v", err)
	}
}

func TestProxyNoConfig(t *testing.T) {
	t.Setenv("MAILOAUTH_STATE_DIR", t.TempDir())
	file := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(file, []byte("[accounts.work]\nclient_id = \"x\"\n"), 0o600)
	var errOut bytes.Buffer
	g := &Globals{ConfigPath: file, In: strings.NewReader(""), Out: io.Discard, ErrOut: &errOut}
	if code := Run(context.Background(), g, []string{"--config", file, "proxy"}); code != ExitConfig || !strings.Contains(errOut.String(), "no proxy is configured") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

// TestProxyRun runs `mailoauth proxy` from a config against a scripted
// IMAP server, logs in as a password-only client, and stops it the way
// SIGTERM does (the command's context ends).
func TestProxyRun(t *testing.T) {
	up := scriptedIMAP(t)
	file := writeProxyConfig(t, "imap+insecure://"+up)
	var errOut bytes.Buffer
	g := &Globals{ConfigPath: file, In: strings.NewReader("pw\n"), Out: io.Discard, ErrOut: &errOut}
	if code := Run(context.Background(), g, []string{"--config", file, "proxy", "passwd", "work"}); code != ExitOK {
		t.Fatalf("passwd: %s", errOut.String())
	}

	var out lockedBuffer
	g = &Globals{ConfigPath: file, Out: &out, ErrOut: &errOut}
	g.Logger = discardSlog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	var tokMu sync.Mutex
	var tokReqs []string
	go func() {
		done <- RunProxy(ctx, &ProxyOptions{G: g, ShutdownTimeout: time.Second, Ready: func(a map[string]string) { ready <- a },
			Token: func(ctx context.Context, account, protocol string) (string, error) {
				tokMu.Lock()
				defer tokMu.Unlock()
				tokReqs = append(tokReqs, account+"/"+protocol)
				return "tok", nil
			}})
	}()
	var addrs map[string]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("RunProxy: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "imap: listening on "+addrs["imap"]+" (local TLS: none) for work") {
		t.Errorf("stdout: %q", out.String())
	}
	c, err := net.Dial("tcp", addrs["imap"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var got []string
	read := func() {
		l, _ := r.ReadString('\n')
		got = append(got, strings.TrimRight(l, "\r\n"))
	}
	read()
	fmt.Fprintf(c, "a LOGIN alice@example.test pw\r\n")
	read()
	fmt.Fprintf(c, "b LOGOUT\r\n")
	read()
	read()
	want := []string{"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] localhost mailoauth proxy ready", "a OK Logged in", "* BYE bye", "b OK done"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunProxy after stop: %v", err)
	}
	// One request for the login, one (or more) from keeping tokens warm.
	tokMu.Lock()
	defer tokMu.Unlock()
	if len(tokReqs) < 2 {
		t.Errorf("token requests = %v, want the warm-up and the login", tokReqs)
	}
	for _, r := range tokReqs {
		if r != "work/imap" {
			t.Errorf("token request %q, want work/imap", r)
		}
	}
}

// scriptedIMAP is an IMAP server that takes XOAUTH2 with token "tok".
func scriptedIMAP(t *testing.T) string {
	return xoauth2IMAP(t, func(ir string) (string, bool) {
		return "bad", ir == "user=alice@example.test\x01auth=Bearer tok\x01\x01"
	})
}

// xoauth2IMAP is an IMAP server on 127.0.0.1 that offers SASL-IR XOAUTH2
// and answers every AUTHENTICATE by auth, given the decoded initial
// response: OK when it accepts, else NO with the text it returns. Other
// commands get OK; LOGOUT ends the connection.
func xoauth2IMAP(t *testing.T, auth func(ir string) (refusal string, ok bool)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(l)
					if len(f) < 2 {
						return
					}
					switch strings.ToUpper(f[1]) {
					case "CAPABILITY":
						fmt.Fprintf(c, "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\n%s OK done\r\n", f[0])
					case "AUTHENTICATE":
						ir, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
						if refusal, ok := auth(string(ir)); ok {
							fmt.Fprintf(c, "%s OK Logged in\r\n", f[0])
						} else {
							fmt.Fprintf(c, "%s NO %s\r\n", f[0], refusal)
						}
					case "LOGOUT":
						fmt.Fprintf(c, "* BYE bye\r\n%s OK done\r\n", f[0])
						return
					default:
						fmt.Fprintf(c, "%s OK done\r\n", f[0])
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

func discardSlog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestProxyRejectedTokenRefreshed: the mail server refuses the account's
// first (unexpired) token; the client gets a plain failure at once, the
// proxy drops the cached token (account.Invalidate), and the client's next
// login goes through with a token freshly issued by the identity server
// (the emulator, client credentials), not the refused one.
func TestProxyRejectedTokenRefreshed(t *testing.T) {
	e := newEmuEnv(t)
	up, seen := rejectFirstIMAP(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf("\n[proxy.imap]\nlisten = \"127.0.0.1:0\"\naccounts = [\"app\"]\nupstream = \"imap+insecure://%s\"\n", up)...)
	if err := os.WriteFile(e.cfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILOAUTH_STATE_DIR", filepath.Join(e.dir, "state"))
	var errOut lockedBuffer
	g := &Globals{ConfigPath: e.cfg, In: strings.NewReader("pw\n"), Out: io.Discard, ErrOut: &errOut}
	if code := Run(context.Background(), g, []string{"--config", e.cfg, "proxy", "passwd", "app"}); code != ExitOK {
		t.Fatalf("passwd: %s", errOut.String())
	}
	var logs lockedBuffer
	g = &Globals{ConfigPath: e.cfg, Out: io.Discard, ErrOut: &errOut, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunProxy(ctx, &ProxyOptions{G: g, ShutdownTimeout: time.Second, Ready: func(a map[string]string) { ready <- a }})
	}()
	var addrs map[string]string
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("RunProxy: %v\n%s", err, errOut.String())
	}
	login := func() string {
		c, err := net.Dial("tcp", addrs["imap"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n')
		fmt.Fprintf(c, "a LOGIN alice@contoso.com pw\r\n")
		l, _ := r.ReadString('\n')
		return strings.TrimRight(l, "\r\n")
	}
	start := time.Now()
	if got := login(); !strings.HasPrefix(got, "a NO") {
		t.Fatalf("first login = %q, want a NO (the server refused the token)", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the client waited %v for the failure", d)
	}
	if got := login(); got != "a OK Logged in" {
		t.Fatalf("second login = %q, want OK with a fresh token\nlog:\n%s", got, logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunProxy: %v", err)
	}
	toks := seen()
	if len(toks) != 2 || toks[0] == toks[1] {
		t.Errorf("upstream saw %d logins (same token twice: %v), want the refused token then a fresh one", len(toks), len(toks) == 2 && toks[0] == toks[1])
	}
	if !strings.Contains(logs.String(), "the next login gets a fresh one") {
		t.Errorf("log does not say the token was dropped:\n%s", logs.String())
	}
	for _, tok := range toks {
		if strings.Contains(logs.String(), tok) || strings.Contains(errOut.String(), tok) {
			t.Error("a token is in the log")
		}
	}
}

// rejectFirstIMAP is an IMAP server that refuses the first XOAUTH2 token it
// sees for alice@contoso.com (with Exchange's words) and accepts any other;
// seen returns the tokens in order.
func rejectFirstIMAP(t *testing.T) (addr string, seen func() []string) {
	var (
		mu   sync.Mutex
		toks []string
	)
	addr = xoauth2IMAP(t, func(ir string) (string, bool) {
		tok, ok := strings.CutPrefix(strings.TrimSuffix(ir, "\x01\x01"), "user=alice@contoso.com\x01auth=Bearer ")
		mu.Lock()
		first := len(toks) == 0
		if ok {
			toks = append(toks, tok)
		}
		mu.Unlock()
		return "AUTHENTICATE failed.", ok && !first
	})
	return addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), toks...)
	}
}

// TestTokenRejectionsDue: a refused token is dropped at most once a minute
// per account and protocol; other protocols and accounts are not held back.
func TestTokenRejectionsDue(t *testing.T) {
	r := &tokenRejections{last: map[string]time.Time{}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		acct, proto string
		at          time.Duration
		want        bool
	}{
		{"work", "pop3", 0, true},
		{"work", "smtp", 2 * time.Second, true}, // another protocol's refusal
		{"work", "pop3", 30 * time.Second, false},
		{"shared", "pop3", 30 * time.Second, true},
		{"work", "pop3", 61 * time.Second, true},
		{"work", "smtp", 61 * time.Second, false},
	}
	var got, want []bool
	for _, s := range steps {
		got = append(got, r.due(s.acct, s.proto, t0.Add(s.at)))
		want = append(want, s.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("due (-want +got):\n%s", diff)
	}
}

// TestProxyListenAddress: the proxy listens on loopback unless the config
// names another address, which is accepted with warnings (checked with
// config check, so the test never binds a non-loopback address); an
// address without a host is refused rather than taken as every interface.
func TestProxyListenAddress(t *testing.T) {
	tests := []struct {
		listen, tls string
		code        int
		want        []string // in stderr
		not         []string
	}{
		{"", "none", ExitOK, nil, []string{"warning"}}, // the default, 127.0.0.1:1993
		{"127.0.0.1:1993", "none", ExitOK, nil, []string{"warning"}},
		{"[::1]:1993", "none", ExitOK, nil, []string{"warning"}},
		{"0.0.0.0:1993", "none", ExitOK, []string{"accepts connections from other machines on 0.0.0.0", "local passwords cross the network in plain text"}, nil},
		{"192.168.1.10:1587", "starttls", ExitOK, []string{"accepts connections from other machines on 192.168.1.10"}, []string{"plain text"}},
		{":1993", "none", ExitConfig, []string{"name the address: 127.0.0.1:1993"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			file := writeProxyConfig(t, "imaps://imap.example.test")
			data, _ := os.ReadFile(file)
			doc := strings.Replace(string(data), `listen = "127.0.0.1:0"`, fmt.Sprintf("tls = %q", tt.tls), 1)
			if tt.listen != "" {
				doc += fmt.Sprintf("listen = %q\n", tt.listen)
			}
			os.WriteFile(file, []byte(doc), 0o600)
			var out, errOut bytes.Buffer
			g := &Globals{ConfigPath: file, In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
			code := Run(context.Background(), g, []string{"--config", file, "config", "check"})
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(errOut.String(), w) {
					t.Errorf("stderr has %q:\n%s", w, errOut.String())
				}
			}
		})
	}
}
