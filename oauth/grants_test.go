package oauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mailoauth/mailoauth/provider"
)

func TestRefreshSendsScopeAndRotates(t *testing.T) {
	rec, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) {
		switch s.Form.Get("refresh_token") {
		case "rt-1":
			m := tokenJSON("at-exchange", "rt-2")
			m["scope"] = "https://outlook.office.com/IMAP.AccessAsUser.All"
			m["ext_expires_in"] = "7199" // string numbers, as v1 endpoints send
			m["refresh_in"] = 1800
			writeJSON(w, 200, m)
		case "rt-2":
			writeJSON(w, 200, tokenJSON("at-graph", "")) // no rotation, no scope
		default:
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_codes": []int{70008}})
		}
	})
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Now: fixedClock}
	ctx := context.Background()

	ex := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"}
	got, err := c.Refresh(ctx, "rt-1", ex)
	if err != nil {
		t.Fatal(err)
	}
	want := &Token{AccessToken: "at-exchange", TokenType: "Bearer", RefreshToken: "rt-2",
		Expiry: fixedNow.Add(3599 * time.Second), ExtExpiry: fixedNow.Add(7199 * time.Second), RefreshAt: fixedNow.Add(1800 * time.Second),
		Scope: []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("exchange token (-want +got):\n%s", diff)
	}

	graph := []string{"https://graph.microsoft.com/Mail.Send", "offline_access"}
	got, err = c.Refresh(ctx, got.RefreshToken, graph)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-graph" || got.RefreshToken != "rt-2" {
		t.Errorf("graph token = %+v, want at-graph keeping rt-2", got)
	}
	if diff := cmp.Diff(graph, got.Scope); diff != "" {
		t.Errorf("scope defaults to the requested (-want +got):\n%s", diff)
	}

	reqs := rec.all()
	wantForms := []url.Values{
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "scope": {strings.Join(ex, " ")}, "client_id": {"cid"}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"rt-2"}, "scope": {strings.Join(graph, " ")}, "client_id": {"cid"}},
	}
	for i, r := range reqs {
		if r.Path != "/contoso.onmicrosoft.com/oauth2/v2.0/token" || r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("request %d: %s %s %q", i, r.Method, r.Path, r.Header.Get("Content-Type"))
		}
		if diff := cmp.Diff(wantForms[i], r.Form); diff != "" {
			t.Errorf("request %d form (-want +got):\n%s", i, diff)
		}
	}

	_, err = c.Refresh(ctx, "revoked", ex)
	if !errors.Is(err, ErrReloginRequired) {
		t.Errorf("revoked refresh: err = %v, want ErrReloginRequired", err)
	}
	if strings.Contains(err.Error(), "revoked") {
		t.Errorf("error leaks the refresh token: %v", err)
	}
}

func TestClientCredentialsSecret(t *testing.T) {
	tests := []struct {
		name      string
		kind      provider.Kind
		methods   []string
		style     SecretStyle
		wantBasic bool
	}{
		{"microsoft auto posts", provider.KindMicrosoft, nil, SecretAuto, false},
		{"oidc advertising basic", provider.KindOIDC, []string{"client_secret_basic", "client_secret_post"}, SecretAuto, true},
		{"oidc advertising post only", provider.KindOIDC, []string{"client_secret_post"}, SecretAuto, false},
		{"oidc advertising nothing", provider.KindOIDC, nil, SecretAuto, true},
		{"forced basic", provider.KindMicrosoft, nil, SecretBasic, true},
		{"forced body", provider.KindOIDC, []string{"client_secret_basic"}, SecretInBody, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, p, srv := fakeServer(t, tt.kind, func(w http.ResponseWriter, s seen) {
				writeJSON(w, 200, map[string]any{"access_token": "app-at", "token_type": "bearer", "expires_in": 3600})
			})
			if tt.kind == provider.KindOIDC {
				p.Endpoints.TokenAuthMethods = tt.methods
			}
			secret := "sec:ret/+ value"
			c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "app id", Auth: ClientSecret{Secret: secret, Style: tt.style}, Now: fixedClock}
			scope := []string{"https://outlook.office365.com/.default"}
			tok, err := c.ClientCredentials(context.Background(), scope)
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "app-at" || tok.RefreshToken != "" {
				t.Errorf("token = %+v", tok)
			}
			r := rec.all()[0]
			want := url.Values{"grant_type": {"client_credentials"}, "scope": scope}
			if tt.wantBasic {
				// RFC 6749 §2.3.1: form-encode, then Basic.
				wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("app+id:sec%3Aret%2F%2B+value"))
				if diff := cmp.Diff(wantAuth, r.Header.Get("Authorization")); diff != "" {
					t.Errorf("Authorization (-want +got):\n%s", diff)
				}
			} else {
				want.Set("client_id", "app id")
				want.Set("client_secret", secret)
				if r.Header.Get("Authorization") != "" {
					t.Errorf("unexpected Authorization header")
				}
			}
			if diff := cmp.Diff(want, r.Form); diff != "" {
				t.Errorf("form (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientCredentialsValidatesBeforeSending(t *testing.T) {
	rec, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) { writeJSON(w, 200, tokenJSON("x", "")) })
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Auth: ClientSecret{Secret: "s"}}
	ctx := context.Background()
	for name, scopes := range map[string][]string{
		"two resources": {"https://outlook.office365.com/.default", "https://graph.microsoft.com/.default"},
		"delegated":     {"https://outlook.office.com/IMAP.AccessAsUser.All"},
		"none":          nil,
	} {
		if _, err := c.ClientCredentials(ctx, scopes); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	common, _ := provider.Microsoft(provider.MicrosoftOptions{Authority: srv.URL})
	c.Provider = common
	if _, err := c.ClientCredentials(ctx, []string{"https://outlook.office365.com/.default"}); err == nil || !strings.Contains(err.Error(), "tenant GUID") {
		t.Errorf("common tenant: err = %v", err)
	}
	c.Provider, c.Auth = p, nil
	if _, err := c.ClientCredentials(ctx, []string{"https://outlook.office365.com/.default"}); err == nil {
		t.Error("no credential: no error")
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestTokenEndpointFailures(t *testing.T) {
	tests := []struct {
		name    string
		h       func(w http.ResponseWriter)
		wantErr string
	}{
		{"secret id pasted", func(w http.ResponseWriter) {
			writeJSON(w, 401, map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": []int{7000215}})
		}, "AADSTS7000215"},
		{"html 200", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body>Sign in to the captive portal</body></html>"))
		}, `unexpected text/html response, not a token: "Sign in to the captive portal"`},
		{"no access token", func(w http.ResponseWriter) { writeJSON(w, 200, map[string]any{"token_type": "Bearer"}) }, "no access_token"},
		{"dpop token", func(w http.ResponseWriter) {
			writeJSON(w, 200, map[string]any{"access_token": "x", "token_type": "DPoP"})
		}, `token type "DPoP" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) { tt.h(w) })
			c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Auth: ClientSecret{Secret: "the-secret-value"}}
			_, err := c.ClientCredentials(context.Background(), []string{"https://outlook.office365.com/.default"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "the-secret-value") {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
	var oe *Error
	_, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) {
		writeJSON(w, 401, map[string]any{"error": "invalid_client", "error_codes": []int{7000215}})
	})
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Auth: ClientSecret{Secret: "s"}}
	_, err := c.ClientCredentials(context.Background(), []string{"https://outlook.office365.com/.default"})
	if !errors.As(err, &oe) || oe.FirstAADSTS() != 7000215 || !strings.Contains(oe.Hint, "secret's ID") || !errors.Is(err, ErrInvalidClient) {
		t.Errorf("err = %#v", err)
	}
}

func TestPassword(t *testing.T) {
	rec, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) {
		writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "AADSTS50076: Due to a configuration change made by your administrator you must use multi-factor authentication.", "error_codes": []int{50076}, "suberror": "basic_action"})
	})
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid"}
	_, err := c.Password(context.Background(), "user@contoso.com", "hunter2!", []string{"https://outlook.office.com/IMAP.AccessAsUser.All"})
	var oe *Error
	if !errors.As(err, &oe) || !strings.Contains(oe.Hint, "interactive") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	want := url.Values{"grant_type": {"password"}, "username": {"user@contoso.com"}, "password": {"hunter2!"}, "client_id": {"cid"},
		"scope": {"https://outlook.office.com/IMAP.AccessAsUser.All"}}
	if diff := cmp.Diff(want, rec.all()[0].Form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	common, _ := provider.Microsoft(provider.MicrosoftOptions{Authority: srv.URL})
	c.Provider = common
	if _, err := c.Password(context.Background(), "u", "p", nil); err == nil || !strings.Contains(err.Error(), "organizations") {
		t.Errorf("common: err = %v", err)
	}
	if len(rec.all()) != 1 {
		t.Errorf("the common-tenant attempt was sent")
	}
}

func FuzzDecodeTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":3599,"ext_expires_in":"3599","refresh_in":1800,"scope":"x y"}`))
	f.Add([]byte(`{"access_token":"a","expires_in":"3599.0","scope":["x","y"]}`))
	f.Add([]byte(`{"access_token":"a","expires_in":-1}`))
	f.Add([]byte(`{"access_token":"","token_type":"mac"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := DecodeTokenResponse(body, fixedNow, []string{"req"})
		if err != nil {
			if strings.Contains(err.Error(), "\x00") {
				t.Fatalf("NUL in error")
			}
			return
		}
		if tok.AccessToken == "" || tok.TokenType != "Bearer" || len(tok.Scope) == 0 {
			t.Fatalf("bad token accepted: %+v", tok)
		}
		if !tok.Expiry.IsZero() && tok.Expiry.Before(fixedNow) {
			t.Fatalf("expiry in the past: %v", tok.Expiry)
		}
	})
}
