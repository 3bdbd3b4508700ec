package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func adminConsentURL(tenant string, kv ...string) string {
	v := url.Values{"client_id": {pgWeb}, "redirect_uri": {"https://app.example/cb"}, "state": {"ac-1"},
		"scope": {"https://outlook.office365.com/.default"}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
			continue
		}
		v.Set(kv[i], kv[i+1])
	}
	return "/" + tenant + "/v2.0/adminconsent?" + v.Encode()
}

func adminConsentV1URL(tenant string) string {
	v := url.Values{"client_id": {pgWeb}, "redirect_uri": {"https://app.example/cb"}, "state": {"v1-state"}}
	return "/" + tenant + "/adminconsent?" + v.Encode()
}

// TestAdminConsentV2 grants the web app's application permissions in
// Fabrikam; client credentials work there afterwards and not before.
func TestAdminConsentV2(t *testing.T) {
	w := newPagesEnv(t)
	adminUser(t, w, "fiona@fabrikam.com")
	ccg := func() jsonReply {
		return w.post(tokPath("fabrikam.com"), kv("grant_type", "client_credentials", "client_id", pgWeb,
			"client_secret", "web-secret", "scope", "https://outlook.office365.com/.default"))
	}
	if r := ccg(); r.status == http.StatusOK {
		t.Fatalf("client credentials before consent: %s", r.raw)
	}
	b := newBrowser(w)
	p := b.signIn(b.get(adminConsentURL("organizations")), "fiona@fabrikam.com", "fiona-pw")
	if p.formName() != "consent" || !strings.Contains(p.text(), "for all users in your organization") {
		t.Fatalf("admin consent page: %s", p.text())
	}
	for _, perm := range []string{"https://outlook.office365.com/IMAP.AccessAsApp (application)", "https://outlook.office365.com/IMAP.AccessAsUser.All (delegated)"} {
		if !strings.Contains(p.text(), perm) {
			t.Errorf("consent page does not list %q: %s", perm, p.text())
		}
	}
	q := wantRedirect(t, b.submit(p, "action", "accept"), "https://app.example/cb")
	want := url.Values{"admin_consent": {"True"}, "tenant": {pgFabrikam}, "state": {"ac-1"},
		"scope": {"https://outlook.office365.com/IMAP.AccessAsUser.All https://outlook.office365.com/IMAP.AccessAsApp"}}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("redirect (-want +got):\n%s", diff)
	}
	r := ccg()
	if r.status != http.StatusOK {
		t.Fatalf("client credentials after consent: %s", r.raw)
	}
	if at, _ := w.e.Lookup(r.str("access_token")); !at.HasRole("IMAP.AccessAsApp") {
		t.Errorf("roles %v", at.Roles)
	}
}

func TestAdminConsentV1(t *testing.T) {
	w := newPagesEnv(t)
	adminUser(t, w, "fiona@fabrikam.com")
	t.Run("accept", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(adminConsentV1URL("fabrikam.com")), "fiona@fabrikam.com", "fiona-pw")
		if !strings.Contains(p.text(), "https://graph.microsoft.com/Mail.Send (application)") {
			t.Errorf("v1 consents to every registered permission: %s", p.text())
		}
		q := wantRedirect(t, b.submit(p, "action", "accept"), "https://app.example/cb")
		want := url.Values{"admin_consent": {"True"}, "tenant": {pgFabrikam}, "state": {"v1-state"}}
		if diff := cmp.Diff(want, q); diff != "" {
			t.Errorf("redirect (-want +got):\n%s", diff)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(adminConsentV1URL("fabrikam.com")), "fiona@fabrikam.com", "fiona-pw")
		q := wantRedirect(t, b.submit(p, "action", "cancel"), "https://app.example/cb")
		want := url.Values{"error": {"permission_denied"}, "error_description": {"The admin canceled the request"}, "state": {"v1-state"}}
		if diff := cmp.Diff(want, q); diff != "" {
			t.Errorf("redirect (-want +got):\n%s", diff)
		}
	})
}

func TestAdminConsentErrors(t *testing.T) {
	w := newPagesEnv(t)
	adminUser(t, w, "fiona@fabrikam.com")
	t.Run("cancel", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(adminConsentURL("fabrikam.com")), "fiona@fabrikam.com", "fiona-pw")
		q := wantRedirect(t, b.submit(p, "action", "cancel"), "https://app.example/cb")
		if q.Get("admin_consent") != "True" || q.Get("error") != "access_denied" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65004") || q.Get("state") != "ac-1" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("not an admin", func(t *testing.T) {
		b := newBrowser(w)
		q := wantRedirect(t, b.signIn(b.get(adminConsentURL("fabrikam.com")), "frank@fabrikam.com", "frank-pw"), "https://app.example/cb")
		if q.Get("admin_consent") != "True" || q.Get("error") != "consent_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS90094") {
			t.Errorf("got %v", q)
		}
	})
	t.Run("no scope", func(t *testing.T) {
		q := wantRedirect(t, newBrowser(w).get(adminConsentURL("fabrikam.com", "scope", "")), "https://app.example/cb")
		if q.Get("error") != "invalid_request" || !strings.HasPrefix(q.Get("error_description"), "AADSTS900144") {
			t.Errorf("got %v", q)
		}
	})
	pages := []struct{ name, path, want string }{
		{"common refused", adminConsentURL("common"), "AADSTS90130"},
		{"consumers refused", adminConsentURL("consumers"), "AADSTS90130"},
		{"v1 common refused", adminConsentV1URL("common"), "AADSTS90130"},
		{"unknown tenant", adminConsentURL("nosuch.example"), "AADSTS90002"},
		{"unknown client", adminConsentURL("fabrikam.com", "client_id", "aaaaaaaa-0000-4000-8000-0000000000ff"), "AADSTS700016"},
		{"redirect mismatch", adminConsentURL("fabrikam.com", "redirect_uri", "https://evil.example/cb"), "AADSTS50011"},
		{"no redirect", adminConsentURL("fabrikam.com", "redirect_uri", ""), "AADSTS900144"},
		{"repeated parameter", adminConsentURL("fabrikam.com") + "&state=2", "AADSTS90100"},
	}
	for _, tt := range pages {
		t.Run(tt.name, func(t *testing.T) {
			wantErrorPage(t, newBrowser(w).get(tt.path), tt.want)
		})
	}
}
