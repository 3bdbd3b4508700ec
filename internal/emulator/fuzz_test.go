package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzTokenForm throws arbitrary bodies, content types and Authorization
// headers (client secrets in HTTP Basic) at the token endpoint handler
// (without the route's panic recovery): every answer must be 200 with a
// token, or a Microsoft error JSON with a 4xx status.
func FuzzTokenForm(f *testing.F) {
	w := newWireEnv(f)
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id="+appC+"&scope=https%3A%2F%2Foutlook.office365.com%2F.default&client_secret=good~secret.value%2B%2F%3D", "contoso.com", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=password&client_id="+appP+"&username=alice%40contoso.com&password=alice-pw&scope=openid+offline_access+Mail.Send", "contoso.com", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=refresh_token&client_id="+appP+"&refresh_token=1.AR", "common", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=device_code&client_id="+appP+"&device_code=x", "organizations", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=authorization_code&client_id="+appP+"&code=%zz", "consumers", "")
	f.Add("application/x-www-form-urlencoded; charset=utf-8", "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&client_id="+appC+"&scope=x", tContoso, "")
	f.Add("application/json", `{"grant_type":"password"}`, "x", "")
	f.Add("multipart/form-data; boundary=x", "--x--", "gov.example", "")
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials&scope=https%3A%2F%2Foutlook.office365.com%2F.default", "contoso.com",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(appC+":good~secret.value%2B%2F%3D")))
	f.Add("application/x-www-form-urlencoded", "grant_type=client_credentials", "contoso.com", "Basic "+base64.StdEncoding.EncodeToString([]byte("%zz:%")))
	f.Add("application/x-www-form-urlencoded", "grant_type=password", "contoso.com", "Basic !!!")
	f.Fuzz(func(t *testing.T, contentType, body, tenant, authorization string) {
		req := httptest.NewRequest(http.MethodPost, "/t/oauth2/v2.0/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		req.SetPathValue("tenant", tenant)
		rec := httptest.NewRecorder()
		w.e.handleToken(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer is not JSON (%d): %q", rec.Code, rec.Body.String())
		}
		switch {
		case rec.Code == 200:
			if out["access_token"] == nil {
				t.Fatalf("200 without access_token: %v", out)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if s, _ := out["error"].(string); s == "" {
				t.Fatalf("%d without error: %v", rec.Code, out)
			}
		default:
			t.Fatalf("status %d: %v", rec.Code, out)
		}
	})
}

// FuzzClientAssertion feeds arbitrary assertions to the client-assertion
// validator: it must answer nil or a Microsoft error, never panic, and only
// accept assertions signed by the registered key.
func FuzzClientAssertion(f *testing.F) {
	w := newWireEnv(f)
	valid := w.assertion(assertionOpts{})
	f.Add(valid)
	f.Add(valid[:len(valid)-10])
	f.Add(w.assertion(assertionOpts{thumb: "x5c"}))
	f.Add(w.assertion(assertionOpts{thumb: "x5t"}))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJQUzI1NiIsIng1dCNTMjU2IjoiISEhIn0.e30.AAAA")
	f.Add(`eyJhbGciOiJSUzI1NiIsIng1YyI6WyIhIl19.e30.AA`)
	req := httptest.NewRequest(http.MethodPost, "/contoso.com/oauth2/v2.0/token", nil)
	req.Host = strings.TrimPrefix(w.srv.URL, "http://")
	ref, _ := w.e.resolveTenantSegment("contoso.com", Clouds["global"])
	w.e.mu.Lock()
	app := w.e.model.app(appC)
	w.e.mu.Unlock()
	f.Fuzz(func(t *testing.T, assertion string) {
		tr := &tokenRequest{r: req, ref: ref, app: app, clientID: appC}
		err := w.e.validateAssertion(tr, assertion)
		if err == nil {
			return
		}
		if _, known := aadsts[err.Code]; !known || err.OAuth == "" {
			t.Fatalf("unexpected error %+v", err)
		}
	})
}

// FuzzParseScopes checks the scope parser never panics and keeps its
// promises: OIDC scopes are lower-case and each resource appears once.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"openid offline_access", imapScope + " Mail.Send", "https://graph.microsoft.com//.default",
		"00000002-0000-0ff1-ce00-000000000000/.default", "/", "//", "https://", "a/b/c/.default", "\x00 \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := ParseScopes(Clouds["global"], raw)
		if err != nil {
			return
		}
		seen := map[*Resource]bool{}
		for _, r := range s.Resources {
			if seen[r.Resource] {
				t.Fatalf("resource %s twice in %q", r.Resource.AppID, raw)
			}
			seen[r.Resource] = true
		}
		for _, o := range s.OIDC {
			if o != strings.ToLower(o) {
				t.Fatalf("OIDC scope %q not lower-case", o)
			}
		}
	})
}
