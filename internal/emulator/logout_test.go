package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLogout(t *testing.T) {
	w := newPagesEnv(t)
	t.Run("ends the session", func(t *testing.T) {
		b := signedIn(t, w)
		p := b.get("/contoso.com/oauth2/v2.0/logout")
		if p.status != http.StatusOK || !strings.Contains(p.id("message"), "You signed out") {
			t.Fatalf("signed-out page: %d %s", p.status, p.text())
		}
		if p.id("trace-id") == "" {
			t.Error("no trace id on the signed-out page")
		}
		if q := wantRedirect(t, b.get(authorizeURL("contoso.com", "prompt", "none")), "http://localhost/"); q.Get("error") != "login_required" {
			t.Errorf("prompt=none after logout: %v", q)
		}
		if p := b.get(authorizeURL("contoso.com")); p.formName() != "signin" {
			t.Errorf("authorize after logout: %q", p.formName())
		}
	})
	t.Run("registered post_logout_redirect_uri", func(t *testing.T) {
		b := signedIn(t, w)
		v := url.Values{"post_logout_redirect_uri": {"https://app.example/cb"}, "client_id": {pgWeb}, "state": {"bye"}}
		p := b.post("/common/oauth2/v2.0/logout", v)
		q := wantRedirect(t, p, "https://app.example/cb")
		if q.Get("state") != "bye" {
			t.Errorf("state %v", q)
		}
		if p := b.get(authorizeURL("contoso.com")); p.formName() != "signin" {
			t.Errorf("authorize after logout: %q", p.formName())
		}
	})
	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		b := signedIn(t, w)
		p := b.get("/common/oauth2/v2.0/logout?post_logout_redirect_uri=" + url.QueryEscape("https://evil.example/"))
		if p.status != http.StatusOK || p.loc != nil || !strings.Contains(p.text(), "not registered") {
			t.Errorf("got %d %v %s", p.status, p.loc, p.text())
		}
	})
	t.Run("revoked sessions", func(t *testing.T) {
		b := signedIn(t, w)
		w.clock.Advance(time.Second)
		if err := w.e.RevokeUserSessions("alice@contoso.com"); err != nil {
			t.Fatal(err)
		}
		if p := b.get(authorizeURL("contoso.com")); p.formName() != "signin" {
			t.Errorf("authorize after the sessions were revoked: %q", p.formName())
		}
	})
	t.Run("v1 path and unknown tenant", func(t *testing.T) {
		if p := newBrowser(w).get("/common/oauth2/logout"); p.status != http.StatusOK {
			t.Errorf("v1 logout: %d", p.status)
		}
		wantErrorPage(t, newBrowser(w).get("/nosuch.example/oauth2/v2.0/logout"), "AADSTS90002")
	})
}
