package emulator

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminSignInAPI drives the same flows as the pages through
// POST /_emulator/signin and /_emulator/adminconsent.
func TestAdminSignInAPI(t *testing.T) {
	w := newPagesEnv(t)
	adminUser(t, w, "fiona@fabrikam.com")
	t.Run("code", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: w.srv.URL + authorizeURL("fabrikam.com"),
			Username: "frank@fabrikam.com", Password: "frank-pw"})
		if r.status != http.StatusOK || r.str("code") == "" || r.str("state") != "st-123" || !strings.HasPrefix(r.str("redirect_url"), "http://localhost/?") {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
		if tok := w.redeem("fabrikam.com", r.str("code"), redirLocal, pkceVerifier); tok.status != http.StatusOK {
			t.Errorf("redeem: %s", tok.raw)
		}
	})
	t.Run("params instead of url, MFA user", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{Tenant: "contoso.com", Params: map[string]string{
			"client_id": pgPublic, "response_type": "code", "redirect_uri": redirCB, "scope": pgIMAP, "response_mode": "form_post"},
			Username: "bob@contoso.com", Password: "bob-pw"})
		if r.status != http.StatusOK || r.str("code") == "" || r.str("redirect_url") != redirCB || r.str("response_mode") != "form_post" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("mfa denied", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: authorizeURL("contoso.com"), Username: "bob@contoso.com", Password: "bob-pw", MFA: "deny"})
		if r.status != http.StatusBadRequest || r.str("page") != "error" || r.code() != 500121 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("consent declined", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: authorizeURL("fabrikam.com", "prompt", "consent"),
			Username: "frank@fabrikam.com", Password: "frank-pw", Consent: "decline"})
		if r.status != http.StatusOK || r.str("error") != "access_denied" || r.code() != 65004 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: authorizeURL("contoso.com"), Username: "alice@contoso.com", Password: "x"})
		if r.status != http.StatusBadRequest || r.str("page") != "signin" || !strings.Contains(r.str("error_description"), "AADSTS50126") {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("error page", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: authorizeURL("common", "redirect_uri", "http://evil.example/")})
		if r.status != http.StatusBadRequest || r.str("page") != "error" || r.code() != 50011 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("redirect error", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: authorizeURL("common", "scope", "")})
		if r.status != http.StatusOK || r.str("error") != "invalid_request" || r.code() != 900144 {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("admin consent", func(t *testing.T) {
		r := w.postJSON("/_emulator/adminconsent", SignInRequest{Tenant: "fabrikam.com", Params: map[string]string{
			"client_id": pgWeb, "redirect_uri": "https://app.example/cb", "scope": "https://graph.microsoft.com/.default", "state": "s"},
			Username: "fiona@fabrikam.com", Password: "fiona-pw"})
		p, _ := r.body["params"].(map[string]any)
		if r.status != http.StatusOK || p["admin_consent"] != "True" || p["tenant"] != pgFabrikam || p["scope"] != "https://graph.microsoft.com/Mail.Send" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("admin consent v1 by url", func(t *testing.T) {
		r := w.postJSON("/_emulator/signin", SignInRequest{URL: adminConsentV1URL("fabrikam.com"),
			Username: "fiona@fabrikam.com", Password: "fiona-pw", Consent: "decline"})
		p, _ := r.body["params"].(map[string]any)
		if r.status != http.StatusOK || p["error"] != "permission_denied" {
			t.Fatalf("got %d %s", r.status, r.raw)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, body := range []any{
			map[string]any{"nope": 1},
			SignInRequest{URL: "/contoso.com/oauth2/v2.0/token"},
			SignInRequest{},
			SignInRequest{URL: "%zz"},
		} {
			if r := w.postJSON("/_emulator/signin", body); r.status != http.StatusBadRequest || r.str("error") == "" {
				t.Errorf("%v: got %d %s", body, r.status, r.raw)
			}
		}
	})
}
