package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/mailclient"
)

// The fake upstream: a scripted IMAP, POP3 or SMTP server on 127.0.0.1:0
// that accepts XOAUTH2/OAUTHBEARER with one token, answers a bad token with
// the JSON error challenge as Dovecot does, and after login answers each
// command with a recognisable line, so tests see what was relayed.

const (
	goodToken = "good-token"
	testEmail = "alice@example.test"
	testPass  = "correct horse"
)

type fakeUpstream struct {
	t     *testing.T
	proto string
	ln    net.Listener
	tls   *tls.Config // for STARTTLS/implicit upstream tests
	impl  bool        // implicit TLS

	mu     sync.Mutex
	logins int      // successful AUTHs
	acks   []string // what the client answered an error challenge with
	after  []string // lines received after login
	wg     sync.WaitGroup
}

func startFake(t *testing.T, proto string) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{t: t, proto: proto, ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				f.serve(c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeUpstream) server() mailclient.Server {
	a := f.ln.Addr().(*net.TCPAddr)
	return mailclient.Server{Protocol: mailclient.Protocol(f.proto), Security: mailclient.Insecure, Host: "127.0.0.1", Port: a.Port}
}

func (f *fakeUpstream) stats() (int, []string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logins, append([]string(nil), f.acks...), append([]string(nil), f.after...)
}

// tokenOK decodes an XOAUTH2 or OAUTHBEARER initial response.
func tokenOK(b64 string) bool {
	raw, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && bytes.Contains(raw, []byte("user="+testEmail+"\x01auth=Bearer "+goodToken+"\x01")) ||
		err == nil && bytes.Contains(raw, []byte("a="+testEmail+",")) && bytes.Contains(raw, []byte("auth=Bearer "+goodToken+"\x01"))
}

var errChallenge = base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer","scope":"mail"}`))

func (f *fakeUpstream) serve(c net.Conn) {
	f.mu.Lock()
	impl, tlsConf := f.impl, f.tls
	f.mu.Unlock()
	if impl {
		tc := tls.Server(c, tlsConf)
		if tc.Handshake() != nil {
			return
		}
		c = tc
	}
	r := bufio.NewReader(c)
	w := func(s string) { io.WriteString(c, s+"\r\n") }
	line := func() (string, bool) {
		l, err := readLine(r, 1<<20)
		return l, err == nil
	}
	authed := false
	// relayed records what reaches the server after login.
	relayed := func(l string) {
		if authed {
			f.mu.Lock()
			f.after = append(f.after, l)
			f.mu.Unlock()
		}
	}
	// auth answers one SASL exchange the same way for every protocol:
	// a good token logs in with okReply; a bad one gets the error
	// challenge (behind challengePrefix), the client's answer is recorded,
	// and failReply ends it. It reports false when the connection is gone.
	auth := func(ir, okReply, challengePrefix, failReply string) bool {
		if tokenOK(ir) {
			authed = true
			f.mu.Lock()
			f.logins++
			f.mu.Unlock()
			w(okReply)
			return true
		}
		w(challengePrefix + errChallenge)
		ack, ok := line()
		if !ok {
			return false
		}
		f.mu.Lock()
		f.acks = append(f.acks, ack)
		f.mu.Unlock()
		w(failReply)
		return true
	}
	switch f.proto {
	case "imap":
		w("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER IDLE] fake ready")
		for {
			l, ok := line()
			if !ok {
				return
			}
			relayed(l)
			tag, rest, _ := strings.Cut(l, " ")
			cmd, arg, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(cmd) {
			case "CAPABILITY":
				w("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER IDLE")
				w(tag + " OK Capability completed.")
			case "AUTHENTICATE":
				_, ir, _ := strings.Cut(arg, " ")
				if !auth(ir, tag+" OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in", "+ ", tag+" NO [AUTHENTICATIONFAILED] Authentication failed.") {
					return
				}
			case "LOGOUT":
				w("* BYE Logging out")
				w(tag + " OK Logout completed.")
				return
			default:
				w(tag + " OK " + strings.ToUpper(cmd) + " relayed")
			}
		}
	case "pop3":
		w("+OK fake ready")
		for {
			l, ok := line()
			if !ok {
				return
			}
			relayed(l)
			cmd, arg, _ := strings.Cut(l, " ")
			switch strings.ToUpper(cmd) {
			case "CAPA":
				w("+OK")
				w("TOP")
				w("UIDL")
				w("SASL XOAUTH2 OAUTHBEARER")
				w(".")
			case "AUTH":
				if arg == "" {
					w("-ERR no")
					continue
				}
				w("+ ")
				ir, ok := line()
				if !ok || !auth(ir, "+OK Logged in.", "+ ", "-ERR [AUTH] Authentication failed.") {
					return
				}
			case "QUIT":
				w("+OK Logging out.")
				return
			default:
				w("+OK " + strings.ToUpper(cmd) + " relayed")
			}
		}
	case "smtp":
		w("220 fake ESMTP")
		for {
			l, ok := line()
			if !ok {
				return
			}
			relayed(l)
			cmd, arg, _ := strings.Cut(l, " ")
			switch strings.ToUpper(cmd) {
			case "EHLO":
				w("250-fake")
				w("250-PIPELINING")
				w("250-SIZE 1000000")
				w("250-STARTTLS")
				w("250-AUTH XOAUTH2 OAUTHBEARER")
				w("250 8BITMIME")
			case "STARTTLS":
				if tlsConf == nil {
					w("454 4.7.0 TLS not available")
					continue
				}
				w("220 2.0.0 Ready to start TLS")
				tc := tls.Server(c, tlsConf)
				if tc.Handshake() != nil {
					return
				}
				c, r = tc, bufio.NewReader(tc)
			case "AUTH":
				_, ir, _ := strings.Cut(arg, " ")
				if !auth(ir, "235 2.7.0 Logged in.", "334 ", "535 5.7.8 Authentication failed.") {
					return
				}
			case "QUIT":
				w("221 2.0.0 Bye")
				return
			default:
				w("250 " + strings.ToUpper(cmd) + " relayed")
			}
		}
	}
}

// env is a proxy in front of a fake upstream, with recorded delays,
// token requests and rejections.
type env struct {
	t     *testing.T
	fake  *fakeUpstream
	srv   *Server
	addr  string
	logs  *syncBuffer
	token string // what TokenFunc hands out

	mu       sync.Mutex
	delays   []time.Duration
	tokens   int
	rejected []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	pwOnce sync.Once
	pwFile *PasswordFile
)

// testPasswords is one password file for the package's tests (argon2id
// costs tens of milliseconds per Set).
func testPasswords(t *testing.T) *PasswordFile {
	pwOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			t.Fatal(err)
		}
		pwFile = OpenPasswordFile(filepath.Join(dir, PasswordFileName))
		if err := pwFile.Set("work", testPass); err != nil {
			t.Fatal(err)
		}
	})
	return pwFile
}

func newEnv(t *testing.T, proto string, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, fake: startFake(t, proto), logs: &syncBuffer{}, token: goodToken}
	cfg := Config{
		Protocol: proto,
		Accounts: []Account{{Name: "work", Email: testEmail, Upstream: e.fake.server()}},
		Token: func(ctx context.Context, account, protocol string) (string, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.tokens++
			if account != "work" || protocol != proto {
				return "", errors.New("unexpected token request " + account + " " + protocol)
			}
			return e.token, nil
		},
		Passwords: testPasswords(t),
		Rejected: func(_ context.Context, account, _ string, err error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.rejected = append(e.rejected, account)
		},
		Delay: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.delays = append(e.delays, d)
			return nil
		},
		Hostname: "proxy.test",
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.addr = srv, ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if strings.Contains(e.logs.String(), testPass) || strings.Contains(e.logs.String(), goodToken) {
			t.Errorf("a password or token reached the log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) counts() (delays []time.Duration, tokens int, rejected []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.delays...), e.tokens, append([]string(nil), e.rejected...)
}

// client is a test mail client speaking raw lines.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) dial() *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return newClient(e.t, c)
}

func newClient(t *testing.T, c net.Conn) *client {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := readLine(c.r, 1<<20)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return l
}

// run plays a script: "> " lines are sent (CRLF added), "< " lines must be
// read exactly, "<EOF" wants the connection closed.
func (c *client) run(script ...string) {
	c.t.Helper()
	var got, want []string
	for _, s := range script {
		switch {
		case strings.HasPrefix(s, "> "):
			c.send(s[2:] + "\r\n")
		case strings.HasPrefix(s, ">raw "):
			c.send(s[5:])
		case s == "<EOF":
			want = append(want, s)
			l, err := readLine(c.r, 1<<20)
			if err == nil {
				got = append(got, l)
			} else if errors.Is(err, io.EOF) || isReset(err) {
				got = append(got, "<EOF")
			} else {
				got = append(got, "error: "+err.Error())
			}
		case strings.HasPrefix(s, "< "):
			want = append(want, s[2:])
			l, err := readLine(c.r, 1<<20)
			if err != nil {
				got = append(got, "error: "+err.Error())
				c.t.Errorf("transcript (-want +got):\n%s", cmp.Diff(want, got))
				c.t.FailNow()
			}
			got = append(got, l)
		default:
			c.t.Fatalf("bad script line %q", s)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		c.t.Errorf("transcript (-want +got):\n%s", diff)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func (c *client) startTLS(pool *x509.CertPool) {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatal("bytes buffered before TLS")
	}
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// plainIR is a SASL PLAIN response.
func plainIR(user, pass string) string { return b64s("\x00" + user + "\x00" + pass) }

// probe fills the proxy's upstream capability cache.
func probe(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.srv.Probe(ctx)
	if e.srv.upstreamCaps() == nil {
		t.Fatalf("probe learnt nothing; log:\n%s", e.logs.String())
	}
}

func mustURL(t *testing.T, u string) mailclient.Server {
	t.Helper()
	s, err := mailclient.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type ctxT = context.Context

var discardLogger = slog.New(slog.DiscardHandler)

// fastVerifier refuses every password without hashing (fuzzing).
type fastVerifier struct{}

func (fastVerifier) Verify(string, string) error { return ErrBadPassword }

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
