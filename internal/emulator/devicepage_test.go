package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// startDevice starts a device authorization for the public app.
func startDevice(t *testing.T, w *pagesEnv, tenant string) (deviceCode, userCode, verification string) {
	t.Helper()
	r := w.post("/"+tenant+"/oauth2/v2.0/devicecode", kv("client_id", pgPublic, "scope", pgIMAP+" offline_access"))
	if r.status != http.StatusOK || r.str("user_code") == "" {
		t.Fatalf("devicecode: %d %s", r.status, r.raw)
	}
	return r.str("device_code"), r.str("user_code"), r.str("verification_uri")
}

func (w *pagesEnv) poll(tenant, deviceCode string) jsonReply {
	w.t.Helper()
	return w.post(tokPath(tenant), kv("grant_type", "urn:ietf:params:oauth:grant-type:device_code", "client_id", pgPublic, "device_code", deviceCode))
}

func TestDevicePageApprove(t *testing.T) {
	w := newPagesEnv(t)
	dc, uc, verification := startDevice(t, w, "organizations")
	vu, err := url.Parse(verification)
	if err != nil || vu.Path != "/devicelogin" {
		t.Fatalf("verification_uri %q", verification)
	}
	if r := w.poll("organizations", dc); r.str("error") != "authorization_pending" {
		t.Fatalf("first poll: %s", r.raw)
	}
	b := newBrowser(w)
	p := b.get(vu.Path)
	if p.formName() != "devicecode" {
		t.Fatalf("device page: %d %s", p.status, p.text())
	}
	// Codes are accepted in any case and with a dash, as people type them.
	p = b.submit(p, "otc", strings.ToLower(uc[:4])+"-"+uc[4:])
	p = b.signIn(p, "frank@fabrikam.com", "frank-pw")
	if p.formName() != "consent" || !strings.Contains(p.text(), "Are you trying to sign in to Public?") || !strings.Contains(p.text(), pgIMAP) {
		t.Fatalf("confirmation page: %s", p.text())
	}
	p = b.submit(p, "action", "continue")
	if p.status != http.StatusOK || !strings.Contains(p.id("message"), "You have signed in to the Public application on your device") {
		t.Fatalf("done page: %d %s", p.status, p.text())
	}
	r := w.poll("organizations", dc)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("poll after approval: %s", r.raw)
	}
	if at, _ := w.e.Lookup(r.str("access_token")); at.UPN != "frank@fabrikam.com" {
		t.Errorf("token for %q", at.UPN)
	}
	// The code cannot be used twice.
	p = b.submit(b.get("/devicelogin"), "otc", uc)
	wantErrorPage(t, p, "AADSTS70018")
}

func TestDevicePageWithSession(t *testing.T) {
	w := newPagesEnv(t)
	b := signedIn(t, w)
	dc, uc, _ := startDevice(t, w, "contoso.com")
	p := b.submit(b.get("/devicelogin?otc="+uc), "otc", uc)
	if p.formName() != "consent" || p.id("user") != "alice@contoso.com" {
		t.Fatalf("with a session the password is skipped; got %q: %s", p.formName(), p.text())
	}
	b.submit(p, "action", "continue")
	if r := w.poll("contoso.com", dc); r.status != http.StatusOK {
		t.Fatalf("poll: %s", r.raw)
	}
}

func TestDevicePageErrors(t *testing.T) {
	w := newPagesEnv(t)
	t.Run("deny", func(t *testing.T) {
		dc, uc, _ := startDevice(t, w, "contoso.com")
		b := newBrowser(w)
		p := b.signIn(b.submit(b.get("/devicelogin"), "otc", uc), "alice@contoso.com", "alice-pw")
		p = b.submit(p, "action", "cancel")
		if !strings.Contains(p.id("message"), "declined") {
			t.Fatalf("declined page: %s", p.text())
		}
		if r := w.poll("contoso.com", dc); r.str("error") != "authorization_declined" {
			t.Errorf("poll after cancel: %s", r.raw)
		}
	})
	t.Run("wrong code", func(t *testing.T) {
		b := newBrowser(w)
		p := b.submit(b.get("/devicelogin"), "otc", "BCDFGHJKL")
		wantErrorPage(t, p, "AADSTS70018")
		if !strings.Contains(p.body, `href="/devicelogin"`) {
			t.Error("no way back to the code page")
		}
	})
	t.Run("expired code", func(t *testing.T) {
		_, uc, _ := startDevice(t, w, "contoso.com")
		w.clock.Advance(901 * time.Second)
		b := newBrowser(w)
		wantErrorPage(t, b.submit(b.get("/devicelogin"), "otc", uc), "AADSTS70019")
	})
	t.Run("expires while signing in", func(t *testing.T) {
		_, uc, _ := startDevice(t, w, "contoso.com")
		b := newBrowser(w)
		p := b.submit(b.get("/devicelogin"), "otc", uc)
		w.clock.Advance(901 * time.Second)
		wantErrorPage(t, b.signIn(p, "alice@contoso.com", "alice-pw"), "AADSTS70019")
	})
	t.Run("user not allowed on the tenant", func(t *testing.T) {
		_, uc, _ := startDevice(t, w, "contoso.com")
		b := newBrowser(w)
		p := b.signIn(b.submit(b.get("/devicelogin"), "otc", uc), "frank@fabrikam.com", "frank-pw")
		if !strings.Contains(p.id("inline-error"), "AADSTS50034") {
			t.Fatalf("got %s", p.text())
		}
	})
	t.Run("users may not consent", func(t *testing.T) {
		_, uc, _ := startDevice(t, w, "fabrikam.com")
		if err := w.e.UpdateTenant(TenantUpdate{Tenant: pgFabrikam, UserConsentDisabled: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.e.UpdateTenant(TenantUpdate{Tenant: pgFabrikam, UserConsentDisabled: ptr(false)}) }()
		b := newBrowser(w)
		wantErrorPage(t, b.signIn(b.submit(b.get("/devicelogin"), "otc", uc), "frank@fabrikam.com", "frank-pw"), "AADSTS90094")
	})
	t.Run("blocked user", func(t *testing.T) {
		_, uc, _ := startDevice(t, w, "contoso.com")
		b := newBrowser(w)
		wantErrorPage(t, b.signIn(b.submit(b.get("/devicelogin"), "otc", uc), "carol@contoso.com", "carol-pw"), "AADSTS53003")
	})
}
