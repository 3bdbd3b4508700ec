// Package oidcprovider runs a real, certified OpenID Provider — the npm
// package oidc-provider — on 127.0.0.1 for integration tests, and drives its
// sign-in pages over HTTP so no browser is needed.
//
// The node side is server.js beside this file, with its dependencies pinned
// by package.json and package-lock.json; .ci/setup.d/30-oidc-provider.sh runs
// npm ci here. Start skips the test unless MAILOAUTH_INTEGRATION=1.
//
//	srv := oidcprovider.Start(t)
//	p, _ := provider.Discover(ctx, http.DefaultClient, srv.Issuer)
//	c := &oauth.Client{Provider: p, ClientID: oidcprovider.DeviceClient}
//	d, _ := c.DeviceAuthorize(ctx, []string{"openid", "offline_access", "mail"})
//	srv.ApproveDevice(ctx, d.UserCode, "alice@example.test")
//	tok, _ := c.DevicePoll(ctx, d)
//
// Mail servers (Dovecot) validate the tokens it issues in one of two ways:
//   - opaque tokens (scope mail/imap/pop/smtp, resource urn:mailoauth:mail):
//     RFC 7662 introspection at IntrospectionURL(), which embeds the
//     credentials of IntrospectClient for HTTP Basic (Dovecot:
//     introspection_mode = post). The answer has active, sub (the login
//     name), scope, client_id, aud and exp;
//   - JWT access tokens (RFC 9068): send resource=urn:mailoauth:mail-jwt in
//     the token requests; verify with the keys at JWKSURL(), aud
//     urn:mailoauth:mail-jwt, iss Issuer.
//
// Relaxed for loopback testing (details in server.js): an http issuer,
// oidc-provider's development login and consent pages (any login, any
// password), native clients so loopback redirects match on any port, state
// in memory. mailoauth's own client sends prompt=consent with
// offline_access to discovered servers, as OIDC Core §11 requires and
// oidc-provider enforces.
package oidcprovider

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The clients registered in every server. Secrets are test values.
const (
	// DeviceClient is public (no secret): device grant and refresh.
	DeviceClient = "mailoauth-device"
	// NativeClient is a public native app: authorization code with PKCE
	// and refresh, redirect http://127.0.0.1/callback on any port
	// (RFC 8252 §7.3: oidc-provider ignores loopback ports for native apps).
	NativeClient = "mailoauth-native"
	// NativeRedirect is NativeClient's registered redirect URI.
	NativeRedirect = "http://127.0.0.1/callback"

	// BasicClient authenticates with client_secret_basic: client
	// credentials, authorization code and refresh.
	BasicClient = "mailoauth-basic"
	BasicSecret = "basic-secret-with-enough-entropy-0123456789"
	// PostClient authenticates with client_secret_post.
	PostClient = "mailoauth-post"
	PostSecret = "post-secret-with-enough-entropy-0123456789"
	// PS256Client and RS256Client authenticate with private_key_jwt
	// (RFC 7523) using ClientKey, signing PS256 and RS256 respectively.
	PS256Client = "mailoauth-jwt-ps256"
	RS256Client = "mailoauth-jwt-rs256"

	// IntrospectClient is for resource servers calling introspection.
	IntrospectClient = "mailoauth-introspect"
	IntrospectSecret = "introspect-secret-with-enough-entropy-0123456789"

	// Resource indicators (RFC 8707) of the mail resource servers.
	MailResource    = "urn:mailoauth:mail"     // opaque tokens, introspection
	MailJWTResource = "urn:mailoauth:mail-jwt" // JWT access tokens
)

// Server is a running oidc-provider.
type Server struct {
	Issuer string
	// ClientKey is the private key of the private_key_jwt clients, with
	// ClientCert a self-signed certificate for it (for x5t headers).
	ClientKey  *rsa.PrivateKey
	ClientCert *x509.Certificate
	// HTTP reaches the server (plain http on loopback).
	HTTP *http.Client

	cmd *exec.Cmd
}

// IntrospectionURL is the RFC 7662 endpoint with IntrospectClient's
// credentials in the userinfo part, the form Dovecot's
// introspection_url takes.
func (s *Server) IntrospectionURL() string {
	u, _ := url.Parse(s.Issuer + "/token/introspection")
	u.User = url.UserPassword(IntrospectClient, IntrospectSecret)
	return u.String()
}

// JWKSURL is where the provider publishes its signing keys.
func (s *Server) JWKSURL() string { return s.Issuer + "/jwks" }

// Dir is the folder holding server.js and node_modules.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Start runs a fresh provider for t and stops it when t ends. It skips t
// unless MAILOAUTH_INTEGRATION=1, and fails it when node or the npm
// packages are missing (run .ci/setup.d/30-oidc-provider.sh).
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Getenv("MAILOAUTH_INTEGRATION") != "1" {
		t.Skip("integration test: set MAILOAUTH_INTEGRATION=1 (needs node and npm ci in internal/testenv/oidcprovider)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("oidc-provider needs node: %v", err)
	}
	dir := Dir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("oidc-provider is not installed: run bash .ci/setup.d/30-oidc-provider.sh (npm ci in %s)", dir)
	}
	s := &Server{HTTP: &http.Client{Timeout: 30 * time.Second}}
	s.ClientKey, s.ClientCert = newClientKey(t)
	cfg, err := s.config()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "oidc-provider.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(node, filepath.Join(dir, "server.js"), cfgPath)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncWriter{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	s.cmd = cmd
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("oidc-provider stderr:\n%s", stderr.String())
		}
	})

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			ready <- fmt.Errorf("oidc-provider exited before it was ready: %w", err)
			return
		}
		var hello struct{ Issuer string }
		if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Issuer == "" {
			ready <- fmt.Errorf("oidc-provider said %q, not its issuer", line)
			return
		}
		s.Issuer = hello.Issuer
		ready <- nil
		io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not start within 30s\nstderr:\n%s", stderr.String())
	}
	return s
}

// syncWriter lets the test read stderr while node may still write it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClientKey(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailoauth oidc-provider test client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return k, c
}

// config is the JSON server.js reads: the registered clients.
func (s *Server) config() ([]byte, error) {
	jwk := jose.JSONWebKey{Key: &s.ClientKey.PublicKey, Use: "sig", Certificates: []*x509.Certificate{s.ClientCert}}
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var pubMap map[string]any
	json.Unmarshal(pub, &pubMap)
	jwks := map[string]any{"keys": []any{pubMap}}
	all := []string{"authorization_code", "refresh_token", "client_credentials"}
	clients := []map[string]any{
		{"client_id": DeviceClient, "token_endpoint_auth_method": "none", "application_type": "native",
			"grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code", "refresh_token"}, "response_types": []string{}, "redirect_uris": []string{}},
		{"client_id": NativeClient, "token_endpoint_auth_method": "none", "application_type": "native",
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "redirect_uris": []string{NativeRedirect}},
		{"client_id": BasicClient, "client_secret": BasicSecret, "token_endpoint_auth_method": "client_secret_basic", "application_type": "native",
			"grant_types": all, "response_types": []string{"code"}, "redirect_uris": []string{NativeRedirect}},
		{"client_id": PostClient, "client_secret": PostSecret, "token_endpoint_auth_method": "client_secret_post", "application_type": "native",
			"grant_types": all, "response_types": []string{"code"}, "redirect_uris": []string{NativeRedirect}},
		{"client_id": PS256Client, "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "PS256", "jwks": jwks,
			"grant_types": all, "response_types": []string{"code"}, "redirect_uris": []string{NativeRedirect}, "application_type": "native"},
		{"client_id": RS256Client, "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256", "jwks": jwks,
			"grant_types": all, "response_types": []string{"code"}, "redirect_uris": []string{NativeRedirect}, "application_type": "native"},
		{"client_id": IntrospectClient, "client_secret": IntrospectSecret, "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{}, "response_types": []string{}, "redirect_uris": []string{}},
	}
	return json.Marshal(map[string]any{"port": 0, "clients": clients})
}

// Browser is a cookie-keeping HTTP client that fills in oidc-provider's
// development sign-in pages the way a person would.
type Browser struct {
	HTTP *http.Client
	// Login is the account name typed on the login page; any name is
	// accepted and becomes the token's sub.
	Login string
	// StopAt, when set, is a URL prefix the browser does not follow a
	// redirect to: the redirect's URL becomes the Page's URL, as when a
	// user copies the address of a page that did not load (the paste
	// fallback) or a web app receives the redirect elsewhere.
	StopAt string

	abortConsent bool
}

// NewBrowser returns a Browser with an empty cookie jar.
func NewBrowser(login string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second}, Login: login}
}

var (
	xsrfRE   = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)
	promptRE = regexp.MustCompile(`name="prompt" value="([a-z]+)"`)
	actionRE = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
)

// Page is where the browser ended.
type Page struct {
	URL    *url.URL
	Status int
	Body   string
}

// SignIn opens authURL and completes the login and consent pages, then
// follows the redirect back to the client (a loopback listener) and
// returns that last page.
func (b *Browser) SignIn(ctx context.Context, authURL string) (*Page, error) {
	p, err := b.do(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	return b.interact(ctx, p)
}

// SignInAndAbort opens authURL, signs in, then aborts at the consent page,
// so the client receives error=access_denied.
func (b *Browser) SignInAndAbort(ctx context.Context, authURL string) (*Page, error) {
	p, err := b.do(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	b.abortConsent = true
	return b.interact(ctx, p)
}

// interact answers login and consent pages until the browser leaves the
// interaction pages.
func (b *Browser) interact(ctx context.Context, p *Page) (*Page, error) {
	for range 5 {
		if !strings.HasPrefix(p.URL.Path, "/interaction/") {
			return p, nil
		}
		m := promptRE.FindStringSubmatch(p.Body)
		if m == nil {
			return nil, fmt.Errorf("interaction page %s has no prompt form: %.300s", p.URL, p.Body)
		}
		if m[1] == "consent" && b.abortConsent {
			var err error
			if p, err = b.do(ctx, http.MethodGet, p.URL.String()+"/abort", nil); err != nil {
				return nil, err
			}
			continue
		}
		form := url.Values{"prompt": {m[1]}}
		if m[1] == "login" {
			form.Set("login", b.Login)
			form.Set("password", "any password")
		}
		action := p.URL.ResolveReference(&url.URL{Path: p.URL.Path}).String()
		if a := actionRE.FindStringSubmatch(p.Body); a != nil {
			ref, err := url.Parse(htmlUnescape(a[1]))
			if err == nil {
				action = p.URL.ResolveReference(ref).String()
			}
		}
		var err error
		if p, err = b.do(ctx, http.MethodPost, action, form); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("too many interaction pages")
}

// ApproveDevice enters userCode on the device page, confirms it, signs in
// as b.Login and consents.
func (b *Browser) ApproveDevice(ctx context.Context, issuer, userCode string) (*Page, error) {
	return b.device(ctx, issuer, userCode, "confirm")
}

// DenyDevice enters userCode and aborts, so the device poll gets
// access_denied.
func (b *Browser) DenyDevice(ctx context.Context, issuer, userCode string) (*Page, error) {
	return b.device(ctx, issuer, userCode, "abort")
}

func (b *Browser) device(ctx context.Context, issuer, userCode, answer string) (*Page, error) {
	p, err := b.do(ctx, http.MethodGet, issuer+"/device", nil)
	if err != nil {
		return nil, err
	}
	m := xsrfRE.FindStringSubmatch(p.Body)
	if m == nil {
		return nil, fmt.Errorf("device page has no xsrf token: %.300s", p.Body)
	}
	p, err = b.do(ctx, http.MethodPost, issuer+"/device", url.Values{"xsrf": {m[1]}, "user_code": {userCode}})
	if err != nil {
		return nil, err
	}
	if m = xsrfRE.FindStringSubmatch(p.Body); m == nil {
		return nil, fmt.Errorf("device confirmation page has no xsrf token: %.300s", p.Body)
	}
	p, err = b.do(ctx, http.MethodPost, issuer+"/device", url.Values{"xsrf": {m[1]}, "user_code": {userCode}, answer: {"yes"}})
	if err != nil {
		return nil, err
	}
	return b.interact(ctx, p)
}

func (b *Browser) do(ctx context.Context, method, u string, form url.Values) (*Page, error) {
	hc := *b.HTTP
	var stopped *url.URL
	if b.StopAt != "" {
		hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), b.StopAt) {
				stopped = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		}
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if stopped != nil {
		return &Page{URL: stopped, Status: resp.StatusCode}, nil
	}
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(data)}, nil
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#x2F;", "/", "&#47;", "/", "&quot;", `"`).Replace(s)
}

// ChromiumResult is what the real browser showed at the end of a sign-in.
type ChromiumResult struct {
	URL     string `json:"url"`
	Title   string `json:"title"`
	Status  string `json:"status"`  // text of the page's #status heading
	Message string `json:"message"` // text of #message
	Text    string `json:"text"`
}

// ChromiumSignIn signs in as login at authURL in headless Chromium
// (browser.js, playwright-core, Debian's /usr/bin/chromium), follows the
// redirect to the client and saves a screenshot of the last page when
// screenshot is not empty. It fails when Chromium is not installed: run
// .ci/setup.d/31-chromium.sh.
func ChromiumSignIn(ctx context.Context, authURL, login, screenshot string) (*ChromiumResult, error) {
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("chromium is not installed (run bash .ci/setup.d/31-chromium.sh): %w", err)
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(Dir(), "browser.js"), authURL, login, screenshot)
	cmd.Dir = Dir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("chromium sign-in: %w\n%s", err, stderr.String())
	}
	var r ChromiumResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("chromium sign-in said %q: %w", out, err)
	}
	return &r, nil
}
