package emulator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAuthorize feeds arbitrary query strings to /authorize and arbitrary
// redirect URIs to the reply-URL matching: no panic (the route wrapper would
// turn one into a 500), a 302 only to a registered URI, and every parsed
// value within its cap.
func FuzzAuthorize(f *testing.F) {
	sc, err := LoadScenario("testdata/authorize.toml")
	if err != nil {
		f.Fatal(err)
	}
	e, err := New(Options{Scenario: sc})
	if err != nil {
		f.Fatal(err)
	}
	h := e.Handler()
	for _, s := range []string{
		strings.SplitN(authorizeURL("common"), "?", 2)[1],
		strings.SplitN(authorizeURL("common", "response_mode", "form_post", "prompt", "none"), "?", 2)[1],
		"client_id=" + pgPublic + "&redirect_uri=http%3A%2F%2Flocalhost%3A1234&response_type=code+id_token&scope=openid",
		"client_id=" + pgPublic + "&redirect_uri=http://[::1]/cb&code_challenge=&code_challenge=x",
		"client_id=%zz&&&=;",
		"redirect_uri=http://localhost&client_id=" + pgWeb + "&response_type=token&scope=.default",
	} {
		f.Add(s, "http://localhost:8080/")
	}
	f.Add("", "http://LOCALHOST/cb")
	f.Add("client_id="+pgPublic, "http://127.0.0.1:99999/cb")
	f.Fuzz(func(t *testing.T, raw, redirect string) {
		for _, tenant := range []string{"common", "contoso.com"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/"+tenant+"/oauth2/v2.0/authorize", nil)
			req.URL.RawQuery = raw
			h.ServeHTTP(rec, req)
			if rec.Code == http.StatusInternalServerError {
				t.Fatalf("500 for %q: %s", raw, rec.Body.String())
			}
			if rec.Code == http.StatusFound {
				loc, err := url.Parse(rec.Header().Get("Location"))
				if err != nil || (loc.Host != "localhost" && !strings.HasPrefix(loc.Host, "localhost:") &&
					!strings.HasPrefix(loc.Host, "127.0.0.1") && loc.Host != "spa.example" && loc.Host != "app.example") {
					t.Fatalf("redirected to an unregistered place %q for %q", rec.Header().Get("Location"), raw)
				}
			}
		}
		if v, err := url.ParseQuery(raw); err == nil {
			p := parseAuthorizeParams(v)
			for _, s := range []string{p.ClientID, p.RedirectURI, p.Scope, p.State, p.Nonce, p.CodeChallenge} {
				if len(s) > maxParam {
					t.Fatalf("a parameter over the cap got through")
				}
			}
		}
		for _, reg := range []string{"http://localhost", "http://127.0.0.1/cb", "https://app.example/cb"} {
			if redirectMatches(reg, redirect) {
				ru, _ := url.Parse(reg)
				qu, err := url.Parse(redirect)
				if err != nil || qu.Scheme != ru.Scheme || qu.Hostname() != ru.Hostname() {
					t.Fatalf("%q matched registered %q", redirect, reg)
				}
			}
		}
		_ = validChallenge(raw)
	})
}
