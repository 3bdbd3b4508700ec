package oauth

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/provider"
)

func TestAdminConsent(t *testing.T) {
	tests := []struct {
		name     string
		v1       bool
		with     func(q url.Values) url.Values
		want     *AdminConsentResult
		wantHint string
	}{
		{"v2 granted", false, func(q url.Values) url.Values {
			return url.Values{"admin_consent": {"True"}, "tenant": {"72f988bf-86f1-41af-91ab-2d7cd011db47"}, "scope": {"https://outlook.office365.com/.default"}, "state": {q.Get("state")}}
		}, &AdminConsentResult{Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47", Scopes: []string{"https://outlook.office365.com/.default"}}, ""},
		{"v1 granted", true, func(q url.Values) url.Values {
			return url.Values{"admin_consent": {"True"}, "tenant": {"t-guid"}, "state": {q.Get("state")}}
		}, &AdminConsentResult{Tenant: "t-guid"}, ""},
		{"v1 cancelled", true, func(q url.Values) url.Values {
			return url.Values{"error": {"permission_denied"}, "error_description": {"The admin canceled the request"}, "state": {q.Get("state")}}
		}, nil, "cancelled"},
		{"v2 consent_required", false, func(q url.Values) url.Values {
			return url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {"AADSTS65004: User declined to consent to access the app."}, "state": {q.Get("state")}}
		}, nil, "declined"},
		{"v2 signed in as a non-admin", false, func(q url.Values) url.Values {
			return url.Values{"admin_consent": {"True"}, "error": {"consent_required"}, "error_description": {"AADSTS90094: The grant requires admin permission."}, "state": {q.Get("state")}}
		}, nil, "not an administrator of this tenant"},
		{"unregistered redirect", false, func(q url.Values) url.Values {
			return url.Values{"error": {"invalid_request"}, "error_description": {"AADSTS50011: The redirect URI 'http://127.0.0.1:1/' specified in the request does not match."}, "state": {q.Get("state")}}
		}, nil, "register this exact redirect URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeAuthServer(t, provider.KindMicrosoft)
			f.redirectWith = tt.with
			b := newFakeBrowser()
			got, err := c.AdminConsent(context.Background(), AdminConsentOptions{V1: tt.v1, Interaction: Interaction{Browser: b}})
			page := <-b.page
			q := f.authQuery
			wantPath := "/contoso.onmicrosoft.com/v2.0/adminconsent"
			if tt.v1 {
				wantPath = "/contoso.onmicrosoft.com/adminconsent"
				if q.Has("scope") {
					t.Errorf("v1 URL has a scope: %v", q)
				}
			} else if q.Get("scope") != "https://outlook.office365.com/.default" {
				t.Errorf("v2 scope = %q", q.Get("scope"))
			}
			if f.authPath != wantPath {
				t.Errorf("consent path = %q, want %q", f.authPath, wantPath)
			}
			if q.Get("client_id") != "cid" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
				t.Errorf("consent query = %v", q)
			}
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
				if !strings.Contains(page, "Consent granted") {
					t.Errorf("page = %s", page)
				}
				return
			}
			var oe *Error
			if !errors.As(err, &oe) || !strings.Contains(oe.Hint, tt.wantHint) {
				t.Fatalf("err = %v (hint %q), want hint with %q", err, hintOf(err), tt.wantHint)
			}
			if !strings.Contains(page, tt.wantHint) || !strings.Contains(page, "Consent failed") {
				t.Errorf("failure page lacks the hint: %s", page)
			}
		})
	}
}

func hintOf(err error) string {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Hint
	}
	return ""
}

func TestAdminConsentURLRefusesCommon(t *testing.T) {
	p, _ := provider.Microsoft(provider.MicrosoftOptions{})
	c := &Client{Provider: p, ClientID: "cid"}
	if _, _, err := c.AdminConsentURL("http://localhost/", "", false); err == nil || !strings.Contains(err.Error(), "tenant GUID") {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.AdminConsent(context.Background(), AdminConsentOptions{Interaction: Interaction{NoBrowser: true}}); err == nil || !strings.Contains(err.Error(), "not \"common\"") {
		t.Fatalf("err = %v", err)
	}
	p, _ = provider.Microsoft(provider.MicrosoftOptions{Tenant: "contoso.com", Cloud: "usgov"})
	c.Provider = p
	u, state, err := c.AdminConsentURL("http://localhost:8400/", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "https://login.microsoftonline.us/contoso.com/v2.0/adminconsent?") || !strings.Contains(u, url.QueryEscape("https://outlook.office365.us/.default")) || !strings.Contains(u, "state="+state) {
		t.Errorf("url = %s", u)
	}
}
