package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// emuEnv is the Microsoft emulator started in-process with a config whose
// accounts point at it (authority + ca_file), as a user would write it.
type emuEnv struct {
	t    testing.TB
	srv  *emulator.Server
	demo emulator.DemoValues
	dir  string
	cfg  string // config file path
}

// The accounts every test gets. dev signs in with a browser (paste), dev-device
// with a device code; app and app-cert are the confidential daemon app;
// multi is on the common tenant (consent must refuse it).
const emuAccounts = `
store = "sqlite:{dir}/tokens.db"

[accounts.dev]
client_id = "{public}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "authcode"
email = "alice@contoso.com"
scopes = ["imap", "smtp", "graph-mail", "offline_access"]

[accounts.dev-device]
client_id = "{public}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "device"
email = "alice@contoso.com"
scopes = ["imap", "smtp", "offline_access"]

[accounts.app]
client_id = "{confidential}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "client_credentials"
client_secret = "env:EMU_APP_SECRET"
email = "alice@contoso.com"

[accounts.app-cert]
client_id = "{confidential}"
tenant = "contoso.com"
authority = "{url}"
ca_file = "ca.pem"
flow = "client_credentials"
certificate = "app.pem"
email = "alice@contoso.com"

[accounts.app-pfx]
client_id = "{confidential}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "client_credentials"
certificate = "app.pfx"
certificate_password = "env:EMU_PFX_PASSWORD"
assertion_alg = "RS256"
x5c = true
email = "alice@contoso.com"

[accounts.ropc]
client_id = "{public}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "password"
email = "{ropc_user}"
password = "env:EMU_ROPC_PASSWORD"

[accounts.ropc-ask]
client_id = "{public}"
tenant = "{tenant}"
authority = "{url}"
ca_file = "ca.pem"
flow = "password"
email = "{ropc_user}"

[accounts.multi]
client_id = "{public}"
authority = "{url}"
ca_file = "ca.pem"
`

func newEmuEnv(t testing.TB) *emuEnv {
	t.Helper()
	srv, err := emulator.Start(emulator.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.UpdateSettings(func(s *emulator.Settings) { s.DeviceCodeInterval = 1 }); err != nil {
		t.Fatal(err)
	}
	e := &emuEnv{t: t, srv: srv, demo: srv.Demo(), dir: t.TempDir()}
	e.writeStoreKey()
	e.write("ca.pem", srv.CAPEM())
	certPEM, keyPEM, err := srv.AppCertificate(e.demo.ConfidentialID)
	if err != nil {
		t.Fatal(err)
	}
	e.write("app.pem", append(certPEM, keyPEM...))
	e.write("app.pfx", pfx(t, certPEM, keyPEM, "pfx-password"))
	t.Setenv("EMU_PFX_PASSWORD", "pfx-password")
	cfg := strings.NewReplacer("{dir}", e.dir, "{public}", e.demo.PublicClientID, "{confidential}", e.demo.ConfidentialID,
		"{tenant}", e.demo.TenantID, "{url}", srv.URL, "{ropc_user}", e.demo.Users[0]).Replace(emuAccounts)
	e.cfg = filepath.Join(e.dir, "config.toml")
	e.write("config.toml", []byte(cfg))
	t.Setenv("EMU_APP_SECRET", e.demo.ConfidentialSecret)
	t.Setenv("MAILOAUTH_CONFIG", "")
	t.Setenv("SSH_CONNECTION", "")
	t.Setenv("SSH_TTY", "")
	return e
}

// write writes name into the env's folder, readable by the owner only, or
// fails the test.
func (e *emuEnv) write(name string, data []byte) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), data, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// writeStoreKey puts a new store key in a key file beside the store, as on
// a host without a keyring, so child processes (the benchmark's binary)
// find it too.
func (e *emuEnv) writeStoreKey() {
	key := make([]byte, tokens.KeySize)
	rand.Read(key)
	e.write("tokens.db.key", []byte(base64.StdEncoding.EncodeToString(key)))
}

// with returns a copy of e reporting to t (a subtest), so a helper's
// Fatal ends that subtest, not its parent.
func (e *emuEnv) with(t testing.TB) *emuEnv {
	c := *e
	c.t = t
	return &c
}

// pfx packs a PEM certificate and key as a password-protected PKCS#12 file,
// the form Windows and Azure portals export.
func pfx(t testing.TB, certPEM, keyPEM []byte, password string) []byte {
	t.Helper()
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		t.Fatal("emulator app certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(kb.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	data, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// run is one command line, in-process, with stdin, stdout and a watched
// stderr.
type run struct {
	code     int
	out, err string
}

// watchWriter is a stderr that tests can wait on: each write is kept and
// passed to onWrite with everything written so far.
type watchWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onWrite func(all string)
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	all := w.buf.String()
	f := w.onWrite
	w.mu.Unlock()
	if f != nil {
		f(all)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// exec runs args against the env's config. onErr, when set, sees stderr as
// it grows (to act on a printed URL or code).
func (e *emuEnv) exec(stdin io.Reader, onErr func(all string), args ...string) run {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.execCtx(ctx, stdin, onErr, args...)
}

// execCtx is exec with the context Main would get (Ctrl-C cancels it).
func (e *emuEnv) execCtx(ctx context.Context, stdin io.Reader, onErr func(all string), args ...string) run {
	e.t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out bytes.Buffer
	errw := &watchWriter{onWrite: onErr}
	g := &Globals{In: stdin, Out: &out, ErrOut: errw}
	args = append([]string{"--config", e.cfg}, args...)
	code := Run(ctx, g, args)
	return run{code: code, out: out.String(), err: errw.String()}
}

// admin posts to the emulator's admin API.
func (e *emuEnv) admin(path string, body, into any) {
	e.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := e.srv.HTTPClient().Post(e.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("admin %s: %s: %s", path, resp.Status, data)
	}
	if into != nil {
		if err := json.Unmarshal(data, into); err != nil {
			e.t.Fatalf("admin %s: %v", path, err)
		}
	}
}

// password is the emulator's demo password of user ("" for a user it
// does not have).
func (e *emuEnv) password(user string) string {
	pw := ""
	for i, u := range e.demo.Users {
		if u == user {
			pw = e.demo.Passwords[i]
		}
	}
	return pw
}

// signIn visits an authorize or admin consent URL as user through the
// emulator's admin sign-in API and returns where the browser would land.
func (e *emuEnv) signIn(rawURL, user string, consentForOrg bool) string {
	e.t.Helper()
	pw := e.password(user)
	var res emulator.SignInResult
	e.admin("/_emulator/signin", emulator.SignInRequest{URL: rawURL, Username: user, Password: pw, ConsentForOrganization: consentForOrg}, &res)
	if res.RedirectURL == "" {
		e.t.Fatalf("sign-in ended on page %q: %s %s", res.Page, res.Error, res.Description)
	}
	return res.RedirectURL
}

var urlLine = regexp.MustCompile(`(?m)^  (https?://\S+)$`)

// pasteSignIn returns stdin and a stderr watcher for a browser flow: when
// the URL appears on stderr, it signs user in through the admin API and
// pastes the redirect URL on stdin.
func (e *emuEnv) pasteSignIn(user string, consentForOrg bool) (io.Reader, func(string)) {
	pr, pw := io.Pipe()
	e.t.Cleanup(func() { pw.Close() })
	return pr, onceURL(func(u string) { fmt.Fprintln(pw, e.signIn(u, user, consentForOrg)) })
}

// login signs dev in through the paste fallback.
func (e *emuEnv) login(account string) run {
	e.t.Helper()
	in, watch := e.pasteSignIn("alice@contoso.com", false)
	r := e.exec(in, watch, "login", account, "--no-browser", "--paste")
	if r.code != 0 {
		e.t.Fatalf("login %s: exit %d\nstderr: %s", account, r.code, r.err)
	}
	return r
}

// store opens the env's token store (between commands).
func (e *emuEnv) store() tokens.Store {
	e.t.Helper()
	st, err := tokens.Open(context.Background(), "sqlite:"+filepath.Join(e.dir, "tokens.db"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

var deviceCodeLine = regexp.MustCompile(`enter the code (\S+)`)

// deviceAct returns a stderr watcher that acts on the printed user code.
func deviceAct(act func(code string)) func(string) {
	var once sync.Once
	return func(all string) {
		if m := deviceCodeLine.FindStringSubmatch(all); m != nil {
			once.Do(func() { go act(m[1]) })
		}
	}
}

func TestLoginDevice(t *testing.T) {
	e := newEmuEnv(t)
	tests := []struct {
		name     string
		setup    func()
		act      func(code string)
		json     bool
		wantCode int
		wantErr  []string // in stderr
	}{
		{name: "approve", act: func(code string) {
			if err := e.srv.ApproveDeviceCodeAs(code, "alice@contoso.com"); err != nil {
				t.Error(err)
			}
		}, wantErr: []string{"/devicelogin and enter the code", "Logged in dev-device as alice@contoso.com (device)"}},
		{name: "deny", act: func(code string) {
			if err := e.srv.DenyDeviceCodeAs(code); err != nil {
				t.Error(err)
			}
		}, wantCode: ExitError, wantErr: []string{"authorization_declined"}},
		{name: "public client flows off", json: true, setup: func() {
			off := false
			e.admin("/_emulator/apps/update", emulator.AppUpdate{ClientID: e.demo.PublicClientID, AllowPublicClient: &off}, nil)
		}, wantCode: ExitError, wantErr: []string{"AADSTS7000218", "Hint: ", "Allow public client flows"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			args := []string{"login", "dev-device"}
			if tt.json {
				args = append(args, "--json")
			}
			var watch func(string)
			if tt.act != nil {
				watch = deviceAct(tt.act)
			}
			r := e.exec(nil, watch, args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tt.wantCode, r.err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if tt.json {
				var got struct{ Error errorJSON }
				if err := json.Unmarshal([]byte(r.out), &got); err != nil {
					t.Fatalf("--json output: %v\n%s", err, r.out)
				}
				if got.Error.Code == "" || len(got.Error.AADSTS) == 0 || got.Error.AADSTS[0] != 7000218 || got.Error.Hint == "" || got.Error.CorrelationID == "" {
					t.Errorf("--json error lacks fields: %+v", got.Error)
				}
			}
		})
	}
}

func TestLoginAuthCodePaste(t *testing.T) {
	e := newEmuEnv(t)
	in, watch := e.pasteSignIn("alice@contoso.com", false)
	r := e.exec(in, watch, "login", "dev", "--no-browser", "--paste", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.err)
	}
	if !strings.Contains(r.err, "code_challenge_method=S256") {
		t.Errorf("the printed URL has no PKCE S256 challenge:\n%s", r.err)
	}
	var res struct {
		Account, Flow, Email, Resource string
		Expiry                         time.Time
		Scopes                         []string
		Refresh                        bool
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if res.Account != "dev" || res.Flow != "authcode" || res.Resource != "exchange" || !res.Refresh || res.Expiry.IsZero() || len(res.Scopes) == 0 {
		t.Errorf("login result = %+v", res)
	}
	if strings.Contains(r.out, "access_token") || strings.Contains(r.out, "refresh_token") {
		t.Errorf("--json output shows a token:\n%s", r.out)
	}
}

// TestLoginAuthCodeLoopback: the browser reaches the listener on 127.0.0.1
// itself (no paste); the listener answers with the success page.
func TestLoginAuthCodeLoopback(t *testing.T) {
	e := newEmuEnv(t)
	page := make(chan string, 1)
	watch := onceURL(func(u string) {
		redirect := e.signIn(u, "alice@contoso.com", false)
		resp, err := http.Get(redirect) // the browser following the redirect to the listener
		if err != nil {
			page <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page <- resp.Status + " " + string(body)
	})
	r := e.exec(nil, watch, "login", "dev", "--no-browser")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	if p := <-page; !strings.HasPrefix(p, "200 ") {
		t.Errorf("listener page: %.300s", p)
	}
	e.token("dev")
}

func TestLoginClientCredentials(t *testing.T) {
	e := newEmuEnv(t)
	for _, acct := range []string{"app", "app-cert", "app-pfx"} {
		t.Run(acct, func(t *testing.T) {
			r := e.exec(nil, nil, "login", acct)
			if r.code != 0 {
				t.Fatalf("login: exit %d\nstderr: %s", r.code, r.err)
			}
			before := e.srv.Counts()["token"]
			tok := e.exec(nil, nil, "token", acct)
			if tok.code != 0 {
				t.Fatalf("token: exit %d\nstderr: %s", tok.code, tok.err)
			}
			at, ok := e.srv.Lookup(strings.TrimSpace(tok.out))
			if !ok {
				t.Fatalf("the emulator does not know the printed token")
			}
			if at.UserOID != "" || len(at.Roles) == 0 {
				t.Errorf("app token: user %q, roles %v; want an app-only token with roles", at.UserOID, at.Roles)
			}
			if got := e.srv.Counts()["token"]; got != before {
				t.Errorf("token endpoint calls %d → %d: the cached app token was not used", before, got)
			}
			// Graph gets its own app token.
			g := e.exec(nil, nil, "token", acct, "--resource", "graph")
			if g.code != 0 {
				t.Fatalf("token graph: exit %d\nstderr: %s", g.code, g.err)
			}
			if gt, ok := e.srv.Lookup(strings.TrimSpace(g.out)); !ok || !strings.Contains(gt.Audience, "graph") {
				t.Errorf("graph app token audience = %q (known %v)", gt.Audience, ok)
			}
		})
	}
	t.Run("bad secret", func(t *testing.T) {
		t.Setenv("EMU_APP_SECRET", "not-the-secret")
		r := e.exec(nil, nil, "login", "app")
		if r.code != ExitError || !strings.Contains(r.err, "AADSTS7000215") || !strings.Contains(r.err, "Hint: ") {
			t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
		}
		if strings.Contains(r.err, "not-the-secret") {
			t.Errorf("stderr shows the secret")
		}
	})
}

// TestOAuthErrorSurface: reportError prints every *oauth.Error field with
// --json and the hint on stderr, and maps relogin to exit code 4.
func TestReportError(t *testing.T) {
	oe := &oauth.Error{Code: "invalid_grant", AADSTS: []int{700082}, Description: "expired", CorrelationID: "c-1", Hint: "log in again",
		TraceID: "t-1", Timestamp: "2026-11-22 01:00:00Z", SubError: "bad_token", URI: "https://login.microsoftonline.com/error?code=700082",
		HTTPStatus: 400, Endpoint: "token", Claims: `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`, RetryAfter: 30 * time.Second}
	var out, errOut bytes.Buffer
	g := &Globals{Out: &out, ErrOut: &errOut, JSON: true}
	err := reportError(g, fmt.Errorf("refresh: %w", oe))
	if ExitCode(err) != ExitRelogin {
		t.Errorf("exit code %d, want %d", ExitCode(err), ExitRelogin)
	}
	if !strings.Contains(errOut.String(), "Hint: log in again") {
		t.Errorf("stderr: %s", errOut.String())
	}
	var got struct{ Error errorJSON }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	// Every field of the typed error, as the issue's --json promises.
	want := errorJSON{Message: "refresh: " + oe.Error(), Code: "invalid_grant", AADSTS: []int{700082}, Description: "expired",
		CorrelationID: "c-1", Hint: "log in again", ReloginRequired: true, TraceID: "t-1", Timestamp: "2026-11-22 01:00:00Z",
		SubError: "bad_token", URI: oe.URI, HTTPStatus: 400, Endpoint: "token", Claims: oe.Claims, RetryAfter: 30}
	if diff := cmp.Diff(want, got.Error); diff != "" {
		t.Errorf("--json error (-want +got):\n%s", diff)
	}
}

// TestLoginDeviceInterrupted: Ctrl-C while the device code is pending stops
// the poll at once with exit code 3 and stores nothing.
func TestLoginDeviceInterrupted(t *testing.T) {
	e := newEmuEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := e.execCtx(ctx, nil, deviceAct(func(string) { cancel() }), "login", "dev-device")
	if r.code != ExitCancel || !strings.Contains(r.err, "mailoauth: login dev-device: interrupted, nothing was stored") {
		t.Fatalf("exit %d, want %d\n%s", r.code, ExitCancel, r.err)
	}
	if recs, err := e.store().Records(context.Background(), "dev-device"); err != nil || len(recs) != 0 {
		t.Errorf("records after an interrupted login: %d, %v", len(recs), err)
	}
}

// TestLoginPassword: ROPC only when the config asks, with a warning; an MFA
// user gets Microsoft's answer and the hint.
func TestLoginPassword(t *testing.T) {
	e := newEmuEnv(t)
	t.Setenv("EMU_ROPC_PASSWORD", e.demo.Passwords[0])
	r := e.exec(nil, nil, "login", "ropc")
	if r.code != 0 || !strings.Contains(r.err, "Warning: the password grant (ROPC) fails for accounts with MFA") {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	if strings.Contains(r.err, e.demo.Passwords[0]) {
		t.Error("stderr shows the password")
	}
	e.token("ropc")

	t.Setenv("EMU_ROPC_PASSWORD", "wrong-password")
	r = e.exec(nil, nil, "login", "ropc")
	if r.code != ExitError || !strings.Contains(r.err, "AADSTS50126") || !strings.Contains(r.err, "Hint: the user name or password is wrong") {
		t.Errorf("wrong password: exit %d\n%s", r.code, r.err)
	}
	if strings.Contains(r.err, "wrong-password") {
		t.Error("stderr shows the password")
	}

	// No password in the config and no terminal to ask on: a clear
	// failure before any request, saying what to configure.
	r = e.exec(nil, nil, "login", "ropc-ask")
	if r.code == 0 || !strings.Contains(r.err, "has no password: set password =") {
		t.Errorf("no password, no terminal: exit %d\n%s", r.code, r.err)
	}
}

// TestCountdown: the terminal line is rewritten every second with the time
// left, and stops when told to.
func TestCountdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			buf     bytes.Buffer
			mu      sync.Mutex
			stopped = make(chan struct{})
			done    = make(chan struct{})
		)
		go countdown(&buf, &mu, time.Now().Add(15*time.Minute), stopped, func() { close(done) })
		time.Sleep(2500 * time.Millisecond)
		close(stopped)
		<-done
		mu.Lock()
		got := buf.String()
		mu.Unlock()
		for _, want := range []string{"expires in 15m0s", "expires in 14m59s", "expires in 14m58s"} {
			if !strings.Contains(got, want) {
				t.Errorf("countdown output lacks %q: %q", want, got)
			}
		}
		if strings.Contains(got, "14m57s") {
			t.Errorf("countdown went on after stop: %q", got)
		}
	})
}

// TestLoginBrowserFallbacks: over SSH the paste fallback turns itself on
// (no flag, no browser opened here), and a sign-in nobody finishes ends at
// --timeout with a clear message.
func TestLoginBrowserFallbacks(t *testing.T) {
	e := newEmuEnv(t)
	t.Run("ssh pastes without a flag", func(t *testing.T) {
		e := e.with(t)
		t.Setenv("DISPLAY", ":0") // a desktop is there, but the user is remote
		t.Setenv("SSH_CONNECTION", "192.0.2.1 50000 192.0.2.2 22")
		in, watch := e.pasteSignIn("alice@contoso.com", false)
		r := e.exec(in, watch, "login", "dev")
		if r.code != 0 || !strings.Contains(r.err, "paste the full URL it ends on here") || !strings.Contains(r.err, "Logged in dev as alice@contoso.com (authcode)") {
			t.Fatalf("exit %d\n%s", r.code, r.err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		e := e.with(t)
		pr, pw := io.Pipe() // a terminal where nobody pastes anything
		defer pw.Close()
		start := time.Now()
		r := e.exec(pr, nil, "login", "dev", "--no-browser", "--paste", "--timeout", "300ms")
		if r.code != ExitError || !strings.Contains(r.err, "no authorization response within 300ms") {
			t.Fatalf("exit %d\n%s", r.code, r.err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("timeout took %v", d)
		}
	})
}

// TestLoginWebRedirectPastes: a redirect that no listener here can receive
// (Microsoft's https …/nativeclient page, or a web app's https redirect)
// turns the paste fallback on by itself, even with a display and without
// --paste, and says that pasting is the way back.
func TestLoginWebRedirectPastes(t *testing.T) {
	e := newEmuEnv(t)
	t.Setenv("DISPLAY", ":0")
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[accounts.native]\nclient_id = %q\ntenant = %q\nauthority = %q\nca_file = \"ca.pem\"\nflow = \"authcode\"\n"+
		"redirect_uri = \"https://login.microsoftonline.com/common/oauth2/nativeclient\"\nemail = \"alice@contoso.com\"\nscopes = [\"imap\", \"offline_access\"]\n",
		e.demo.PublicClientID, e.demo.TenantID, e.srv.URL)
	f.Close()
	in, watch := e.pasteSignIn("alice@contoso.com", false)
	r := e.exec(in, watch, "login", "native", "--no-browser")
	if r.code != 0 || !strings.Contains(r.err, "After signing in, paste the full URL the browser ends on here") ||
		!strings.Contains(r.err, "Logged in native as alice@contoso.com (authcode)") {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	e.token("native")
}

// onceURL returns a stderr watcher that runs act, once and in its own
// goroutine, with the first sign-in URL printed (a browser going there).
func onceURL(act func(u string)) func(string) {
	var once sync.Once
	return func(all string) {
		if m := urlLine.FindStringSubmatch(all); m != nil {
			once.Do(func() { go act(m[1]) })
		}
	}
}
