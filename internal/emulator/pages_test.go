package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test helpers for the browser-facing endpoints: an emulator from
// testdata/authorize.toml and a "browser" (cookie jar, no redirect
// following) that reads the pages' forms and submits them over HTTP.

// Ids of testdata/authorize.toml.
const (
	pgContoso    = "11111111-1111-4111-8111-111111111111"
	pgFabrikam   = "22222222-2222-4222-8222-222222222222"
	pgPublic     = "aaaaaaaa-0000-4000-8000-000000000001"
	pgWeb        = "aaaaaaaa-0000-4000-8000-000000000002"
	pgSingle     = "aaaaaaaa-0000-4000-8000-000000000004"
	pgIMAP       = "https://outlook.office.com/IMAP.AccessAsUser.All"
	pkceVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-more"
	redirLocal   = "http://localhost"
	redirCB      = "http://127.0.0.1/cb"
)

// pagesClock is the injected clock of a pagesEnv.
type pagesClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *pagesClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *pagesClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// pagesEnv is an emulator from testdata/authorize.toml behind httptest.
type pagesEnv struct {
	t     *testing.T
	e     *Emulator
	clock *pagesClock
	srv   *httptest.Server
}

// jsonReply is a JSON answer of the token endpoint or the admin API.
type jsonReply struct {
	status int
	raw    string
	body   map[string]any
}

func (r jsonReply) str(k string) string { s, _ := r.body[k].(string); return s }

// code returns the first AADSTS number of an error reply.
func (r jsonReply) code() int {
	codes, _ := r.body["error_codes"].([]any)
	if len(codes) == 0 {
		return 0
	}
	f, _ := codes[0].(float64)
	return int(f)
}

func (w *pagesEnv) send(req *http.Request) jsonReply {
	w.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := jsonReply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// post sends a form to path.
func (w *pagesEnv) post(path string, v url.Values) jsonReply {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return w.send(req)
}

// postJSON sends v as JSON to path.
func (w *pagesEnv) postJSON(path string, v any) jsonReply {
	w.t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	return w.send(req)
}

func tokPath(tenant string) string { return "/" + tenant + "/oauth2/v2.0/token" }

func kv(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

// redeem redeems code at tenant's token endpoint for the public app.
func (w *pagesEnv) redeem(tenant, code, redirect, verifier string) jsonReply {
	w.t.Helper()
	return w.post(tokPath(tenant), kv("grant_type", "authorization_code", "client_id", pgPublic,
		"code", code, "redirect_uri", redirect, "code_verifier", verifier))
}

func pkceS256(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func newPagesEnv(t *testing.T) *pagesEnv {
	t.Helper()
	sc, err := LoadScenario("testdata/authorize.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := &pagesClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	e, err := New(Options{Scenario: sc, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return &pagesEnv{t: t, e: e, clock: c, srv: srv}
}

// adminUser makes upn a tenant admin.
func adminUser(t *testing.T, w *pagesEnv, upn string) {
	t.Helper()
	if err := w.e.UpdateUser(UserUpdate{User: upn, Admin: ptr(true)}); err != nil {
		t.Fatal(err)
	}
}

type browser struct {
	t      *testing.T
	client *http.Client
	base   string
}

func newBrowser(w *pagesEnv) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: w.t, base: w.srv.URL, client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one answer the browser got.
type page struct {
	status int
	header http.Header
	body   string // raw HTML
	loc    *url.URL
}

// text is the page body with tags removed and entities decoded, for
// asserting the words a person reads.
func (p *page) text() string {
	s := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(p.body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}

// id returns the text of the element with id.
func (p *page) id(id string) string {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(html.UnescapeString(m[1]))
}

// formName returns the id of the page's form ("signin", "mfa", "consent",
// "pick", "devicecode"), or "" when the page has none.
func (p *page) formName() string {
	m := regexp.MustCompile(`<form method="post" action="[^"]*" id="([^"]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		return ""
	}
	return m[1]
}

// query returns the redirect's parameters (query or fragment).
func (p *page) query() url.Values {
	if p.loc == nil {
		return nil
	}
	if p.loc.Fragment != "" {
		v, _ := url.ParseQuery(p.loc.Fragment)
		return v
	}
	return p.loc.Query()
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if strings.Contains(p.body, "Troubleshooting details") {
		checkPageMarkup(b.t, p.body)
	}
	if l := resp.Header.Get("Location"); l != "" {
		p.loc, _ = url.Parse(l)
	}
	return p
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, v url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	formRe   = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// submit posts p's form with its hidden fields plus fields (an "action" field
// stands for the button pressed).
func (b *browser) submit(p *page, fields ...string) *page {
	b.t.Helper()
	m := formRe.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form on the page (status %d): %s", p.status, p.text())
	}
	v := url.Values{}
	for _, h := range hiddenRe.FindAllStringSubmatch(p.body, -1) {
		v.Set(h[1], html.UnescapeString(h[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	return b.post(html.UnescapeString(m[1]), v)
}

// signIn fills in the sign-in page.
func (b *browser) signIn(p *page, user, pw string) *page {
	b.t.Helper()
	if p.formName() != "signin" {
		b.t.Fatalf("want the sign-in page, got status %d form %q: %s", p.status, p.formName(), p.text())
	}
	return b.submit(p, "login", user, "passwd", pw)
}

// authorizeURL builds an authorize path for tenant with the public app,
// PKCE S256 and the given overrides ("" deletes a parameter).
func authorizeURL(tenant string, kv ...string) string {
	v := url.Values{"client_id": {pgPublic}, "response_type": {"code"}, "redirect_uri": {redirLocal},
		"scope": {pgIMAP + " offline_access openid"}, "state": {"st-123"},
		"code_challenge": {pkceS256(pkceVerifier)}, "code_challenge_method": {"S256"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
			continue
		}
		v.Set(kv[i], kv[i+1])
	}
	return "/" + tenant + "/oauth2/v2.0/authorize?" + v.Encode()
}

// wantRedirect checks that p sends the browser to redirect URI prefix want.
func wantRedirect(t *testing.T, p *page, want string) url.Values {
	t.Helper()
	if p.status != http.StatusFound || p.loc == nil {
		t.Fatalf("want a redirect to %s, got status %d: %s", want, p.status, p.text())
	}
	got := p.loc.Scheme + "://" + p.loc.Host + p.loc.Path
	if got != want {
		t.Fatalf("redirect to %s, want %s", got, want)
	}
	return p.query()
}

// wantErrorPage checks an error page: status, the AADSTS text and the
// troubleshooting details.
func wantErrorPage(t *testing.T, p *page, aadsts string) {
	t.Helper()
	if p.status < 400 || p.formName() != "" {
		t.Fatalf("want an error page, got status %d: %s", p.status, p.text())
	}
	if got := p.id("error"); !strings.HasPrefix(got, aadsts) {
		t.Fatalf("error page says %q, want it to start with %q", got, aadsts)
	}
	for _, id := range []string{"trace-id", "correlation-id", "timestamp"} {
		if p.id(id) == "" {
			t.Errorf("error page has no %s", id)
		}
	}
	if !strings.Contains(p.text(), "Trace ID") || !strings.Contains(p.text(), "Correlation ID") {
		t.Errorf("troubleshooting labels missing: %s", p.text())
	}
}

// checkPageMarkup checks what a browser and an HTML validator insist on:
// doctype, language, charset, unique ids, a label for every text input, and
// no script.
func checkPageMarkup(t *testing.T, body string) {
	t.Helper()
	if !strings.HasPrefix(body, "<!DOCTYPE html>\n<html lang=\"en\">") || !strings.Contains(body, `<meta charset="utf-8">`) {
		t.Errorf("page does not start with doctype, lang and charset")
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(` id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if seen[m[1]] {
			t.Errorf("duplicate id %q", m[1])
		}
		seen[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`<input type="(?:text|password)" id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		if !strings.Contains(body, `<label for="`+m[1]+`">`) {
			t.Errorf("input %q has no label", m[1])
		}
	}
	if strings.Contains(body, "<script") {
		t.Errorf("page uses a script")
	}
}
