package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Ids of testdata/wire.toml.
const (
	tContoso  = "11111111-1111-4111-8111-111111111111"
	tFabrikam = "22222222-2222-4222-8222-222222222222"
	tGov      = "33333333-3333-4333-8333-333333333333"
	appP      = "aaaaaaaa-0000-4000-8000-000000000001"
	appC      = "aaaaaaaa-0000-4000-8000-000000000002"
	appN      = "aaaaaaaa-0000-4000-8000-000000000003"
	appS      = "aaaaaaaa-0000-4000-8000-000000000004"
	appM      = "aaaaaaaa-0000-4000-8000-000000000005"
	appG      = "aaaaaaaa-0000-4000-8000-000000000006"
	secretC   = "good~secret.value+/="
	secretIDC = "bbbbbbbb-0000-4000-8000-000000000001"
	imapScope = "https://outlook.office.com/IMAP.AccessAsUser.All"
	appOnly   = "https://outlook.office365.com/.default"
)

// clock is an injectable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// wireEnv is an emulator from testdata/wire.toml behind httptest (plain
// HTTP: the wire tests check the protocol, TLS is tested apart).
type wireEnv struct {
	t     *testing.T // nil when built for a fuzz target
	tb    testing.TB
	e     *Emulator
	clock *clock
	srv   *httptest.Server
}

func newWireEnv(t testing.TB) *wireEnv {
	t.Helper()
	sc, err := LoadScenario("testdata/wire.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	e, err := New(Options{Scenario: sc, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	tt, _ := t.(*testing.T)
	return &wireEnv{t: tt, tb: t, e: e, clock: c, srv: srv}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

// code returns the first AADSTS number of an error reply.
func (r reply) code() int {
	codes, _ := r.body["error_codes"].([]any)
	if len(codes) == 0 {
		return 0
	}
	f, _ := codes[0].(float64)
	return int(f)
}

func (w *wireEnv) do(req *http.Request) reply {
	w.h().Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.h().Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// post sends a form to path (e.g. "/contoso.com/oauth2/v2.0/token").
func (w *wireEnv) post(path string, form url.Values, hdr ...string) reply {
	w.h().Helper()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return w.do(req)
}

func (w *wireEnv) get(path string, hdr ...string) reply {
	w.h().Helper()
	req, _ := http.NewRequest(http.MethodGet, w.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return w.do(req)
}

func tokenPath(tenant string) string { return "/" + tenant + "/oauth2/v2.0/token" }

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// ropc gets tokens for alice with the public app by ROPC.
func (w *wireEnv) ropc(scope string) reply {
	return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP,
		"username", "alice@contoso.com", "password", "alice-pw", "scope", scope))
}

// appCert returns the confidential app's certificate and key.
func (w *wireEnv) appCert() (*x509.Certificate, *rsa.PrivateKey) {
	w.h().Helper()
	certPEM, keyPEM, err := w.e.AppCertificate(appC)
	if err != nil {
		w.h().Fatal(err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		w.h().Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		w.h().Fatal(err)
	}
	return cert, k.(*rsa.PrivateKey)
}

// assertionOpts shape a test client assertion.
type assertionOpts struct {
	alg      jose.SignatureAlgorithm
	thumb    string // "x5t", "x5t#S256", "x5c", "none"
	urlB64   bool   // thumbprint in base64url instead of std+padding
	rawThumb string // x5t value to send as is
	key      *rsa.PrivateKey
	iss, sub string
	aud      string
	jti      string
	nbf, exp time.Time
	omit     string // claim to leave out
}

func (w *wireEnv) assertion(o assertionOpts) string {
	w.h().Helper()
	cert, key := w.appCert()
	if o.key != nil {
		key = o.key
	}
	if o.alg == "" {
		o.alg = jose.PS256
	}
	now := w.clock.Now()
	if o.iss == "" {
		o.iss = appC
	}
	if o.sub == "" {
		o.sub = o.iss
	}
	if o.aud == "" {
		o.aud = w.srv.URL + tokenPath("contoso.com")
	}
	if o.jti == "" {
		o.jti = newGUID()
	}
	if o.nbf.IsZero() {
		o.nbf = now
	}
	if o.exp.IsZero() {
		o.exp = now.Add(10 * time.Minute)
	}
	enc := base64.StdEncoding
	if o.urlB64 {
		enc = base64.RawURLEncoding
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	switch {
	case o.rawThumb != "":
		opts = opts.WithHeader("x5t", o.rawThumb)
	case o.thumb == "" || o.thumb == "x5t#S256":
		s := sha256.Sum256(cert.Raw)
		opts = opts.WithHeader("x5t#S256", enc.EncodeToString(s[:]))
	case o.thumb == "x5t":
		s := sha1.Sum(cert.Raw)
		opts = opts.WithHeader("x5t", enc.EncodeToString(s[:]))
	case o.thumb == "x5c":
		opts = opts.WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(cert.Raw)})
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: key}, opts)
	if err != nil {
		w.h().Fatal(err)
	}
	claims := map[string]any{"iss": o.iss, "sub": o.sub, "aud": o.aud, "jti": o.jti,
		"nbf": o.nbf.Unix(), "exp": o.exp.Unix(), "iat": now.Unix()}
	delete(claims, o.omit)
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		w.h().Fatal(err)
	}
	return s
}

func ccgAssertion(a string) url.Values {
	return form("grant_type", "client_credentials", "client_id", appC, "scope", appOnly,
		"client_assertion_type", assertionTypeJWT, "client_assertion", a)
}

func (w *wireEnv) postJSON(path string, v any) reply {
	w.h().Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	return w.do(req)
}

// h returns the test or fuzz target the env reports to (tests of other
// files may build a wireEnv with only t set).
func (w *wireEnv) h() testing.TB {
	if w.tb != nil {
		return w.tb
	}
	return w.t
}
