package exchange

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Ids of testdata/exchange.toml.
const (
	tenant     = "11111111-1111-4111-8111-111111111111"
	appPublic  = "aaaaaaaa-0000-4000-8000-000000000001"
	appDaemon  = "aaaaaaaa-0000-4000-8000-000000000002"
	appNarrow  = "aaaaaaaa-0000-4000-8000-000000000003"
	appNoSP    = "aaaaaaaa-0000-4000-8000-000000000004"
	alice      = "alice@contoso.com"
	bob        = "bob@contoso.com"
	shared     = "sales@contoso.com"
	exoScopes  = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access"
	graphScope = "https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/Mail.ReadWrite"
)

// logBuffer collects log lines for assertions on the logged reasons.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is a running identity emulator (HTTPS) plus the Exchange servers.
type env struct {
	t    *testing.T
	srv  *emulator.Server
	xs   *Server
	http *http.Client
	logs *logBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sc, err := emulator.LoadScenario("testdata/exchange.toml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := emulator.Start(emulator.ServerOptions{Options: emulator.Options{Scenario: sc, Logger: logger}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	xs, err := Start(srv, Options{PlainIMAPAddr: "127.0.0.1:0", PlainPOP3Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = xs.Close() })
	hc := srv.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	return &env{t: t, srv: srv, xs: xs, http: hc, logs: logs}
}

// postForm posts to the emulator's identity endpoints and decodes JSON.
func (e *env) postForm(path string, form url.Values) map[string]any {
	e.t.Helper()
	resp, err := e.http.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		e.t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

// userToken signs upn in with the device code flow (approved through the
// admin Go API) and returns the access token for scope.
func (e *env) userToken(clientID, upn, scope string) string {
	e.t.Helper()
	tenantSeg := upn[strings.LastIndex(upn, "@")+1:]
	dc := e.postForm("/"+tenantSeg+"/oauth2/v2.0/devicecode", url.Values{"client_id": {clientID}, "scope": {scope}})
	if err := e.srv.ApproveDeviceCodeAs(dc["user_code"].(string), upn); err != nil {
		e.t.Fatal(err)
	}
	tok := e.postForm("/"+tenantSeg+"/oauth2/v2.0/token", url.Values{"client_id": {clientID},
		"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc["device_code"].(string)}})
	return tok["access_token"].(string)
}

// appToken gets an app-only token with client credentials + secret.
func (e *env) appToken(clientID, secret, scope string) string {
	e.t.Helper()
	tok := e.postForm("/"+tenant+"/oauth2/v2.0/token", url.Values{"client_id": {clientID}, "client_secret": {secret},
		"grant_type": {"client_credentials"}, "scope": {scope}})
	return tok["access_token"].(string)
}

func xoauth2(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

// line is a raw line-protocol client for exact-reply assertions.
type line struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (e *env) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.srv.CAPool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (e *env) dialTLS(addr string) *line {
	e.t.Helper()
	c, err := tls.Dial("tcp", addr, e.tlsConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &line{t: e.t, c: c, r: bufio.NewReader(c)}
}

func (e *env) dial(addr string) *line {
	e.t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &line{t: e.t, c: c, r: bufio.NewReader(c)}
}

// startTLS upgrades the connection (after the server agreed).
func (l *line) startTLS(conf *tls.Config) {
	l.t.Helper()
	tc := tls.Client(l.c, conf)
	if err := tc.Handshake(); err != nil {
		l.t.Fatal(err)
	}
	l.c, l.r = tc, bufio.NewReader(tc)
}

func (l *line) send(s string) {
	l.t.Helper()
	_ = l.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(l.c, s+"\r\n"); err != nil {
		l.t.Fatal(err)
	}
}

// read returns the next line without CRLF.
func (l *line) read() string {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// expect reads one line and checks it exactly.
func (l *line) expect(want string) {
	l.t.Helper()
	if got := l.read(); got != want {
		l.t.Fatalf("got line %q, want %q", got, want)
	}
}

// expectPrefix reads one line and checks its start.
func (l *line) expectPrefix(prefix string) string {
	l.t.Helper()
	got := l.read()
	if !strings.HasPrefix(got, prefix) {
		l.t.Fatalf("got line %q, want prefix %q", got, prefix)
	}
	return got
}

// readUntil reads lines until one equals end (included), returning them.
func (l *line) readUntil(end string) []string {
	l.t.Helper()
	var out []string
	for {
		s := l.read()
		out = append(out, s)
		if s == end {
			return out
		}
	}
}

// readUntilPrefix reads lines until one starts with prefix, returning it.
func (l *line) readUntilPrefix(prefix string) string {
	l.t.Helper()
	for {
		if s := l.read(); strings.HasPrefix(s, prefix) {
			return s
		}
	}
}

// emulatorUserSMTP builds the admin update of a mailbox's SMTP AUTH override.
func emulatorUserSMTP(upn, v string) emulator.UserUpdate {
	return emulator.UserUpdate{User: upn, SMTPAuth: &v}
}

// reply reads one SMTP reply (all its continuation lines).
func (l *line) reply() []string {
	l.t.Helper()
	var out []string
	for {
		s := l.read()
		out = append(out, s)
		if len(s) < 4 || s[3] != '-' {
			return out
		}
	}
}

// newFuzzServer is a Server over a fresh emulator without listeners, for
// fuzzing session handlers directly.
func newFuzzServer(tb testing.TB) *Server {
	tb.Helper()
	em, err := emulator.New(emulator.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return &Server{em: em, log: slog.New(slog.DiscardHandler), hostname: "EMU0P01MB0001", store: newMailStore(),
		acceptedConns: map[net.Conn]bool{}}
}
