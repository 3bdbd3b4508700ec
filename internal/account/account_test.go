package account

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/tokens"
)

func jwt(payload string) string {
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
}

func TestEmailFromIDToken(t *testing.T) {
	tests := []struct{ name, tok, want string }{
		{"microsoft", jwt(`{"preferred_username":"alice@contoso.com","name":"Alice"}`), "alice@contoso.com"},
		{"email first", jwt(`{"email":"bob@gmail.com","preferred_username":"bob"}`), "bob@gmail.com"},
		{"upn", jwt(`{"upn":"c@contoso.com"}`), "c@contoso.com"},
		{"not an address", jwt(`{"preferred_username":"+15550100"}`), ""},
		{"padded", "a." + base64.URLEncoding.EncodeToString([]byte(`{"email":"p@x.org"}`)) + ".b", "p@x.org"},
		{"two parts", "a.b", ""},
		{"bad base64", "a.!!!.b", ""},
		{"not json", jwt(`nope`), ""},
		{"line break", jwt(`{"email":"a@b\r\nX: y"}`), ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := emailFromIDToken(tt.tok); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzEmailFromIDToken: the ID token comes from the network; reading it must
// never panic and never return something that is not a plain address.
func FuzzEmailFromIDToken(f *testing.F) {
	for _, s := range []string{jwt(`{"email":"a@b.c"}`), "a.b.c", "..", jwt(`{"upn":1}`), "x." + strings.Repeat("A", 100) + ".y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := emailFromIDToken(s)
		if got != "" && (!strings.Contains(got, "@") || strings.ContainsAny(got, " \r\n\t\x00")) {
			t.Errorf("emailFromIDToken returned %q", got)
		}
	})
}

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("MAILOAUTH_STATE_DIR", dir)
	cfg, err := config.Parse(filepath.Join(dir, "config.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func open(t *testing.T, doc string) *Manager {
	t.Helper()
	st, err := tokens.Open(context.Background(), "mem:", &tokens.Options{Key: make([]byte, tokens.KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := Open(context.Background(), parse(t, doc), Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestResourceScopes: which scopes each resource's token is refreshed with,
// with no network (providers are built from the config alone).
func TestResourceScopes(t *testing.T) {
	m := open(t, `
[accounts.ms]
client_id = "x"
tenant = "contoso.com"
email = "a@contoso.com"
scopes = ["imap", "smtp", "graph-mail", "offline_access"]
[accounts.usgov]
client_id = "x"
tenant = "contoso.com"
cloud = "usgov"
[accounts.app]
client_id = "x"
tenant = "contoso.com"
flow = "client_credentials"
client_secret = "env:NOPE"
email = "a@contoso.com"
[accounts.gmail]
provider = "google"
client_id = "x"
client_secret = "env:NOPE"
`)
	t.Setenv("NOPE", "s")
	tests := []struct {
		account, resource string
		want              []string
		wantErr           string
	}{
		// openid and profile ride along, so the ID token names who signed
		// in after every refresh too (the mailbox when the config names
		// none; a shared mailbox's delegate otherwise).
		{"ms", "imap", []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile"}, ""},
		{"ms", "smtp", []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access", "openid", "profile"}, ""},
		{"ms", "graph", []string{"https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send", "offline_access", "openid", "profile"}, ""},
		{"usgov", "pop", []string{"https://outlook.office365.us/IMAP.AccessAsUser.All", "https://outlook.office365.us/SMTP.Send", "offline_access", "openid", "profile"}, ""},
		{"usgov", "graph", nil, "add graph-mail to scopes"},
		{"app", "imap", []string{"https://outlook.office365.com/.default"}, ""},
		{"app", "graph", []string{"https://graph.microsoft.com/.default"}, ""},
		{"gmail", "smtp", []string{"https://mail.google.com/", "openid", "email"}, ""},
		{"gmail", "graph", nil, "only for Microsoft"},
		{"ms", "carddav", nil, "unknown resource"},
	}
	for _, tt := range tests {
		t.Run(tt.account+" "+tt.resource, func(t *testing.T) {
			a, err := m.Account(tt.account)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			key, err := a.cacheKey(tt.resource)
			if err == nil {
				p, perr := a.Provider(context.Background())
				if perr != nil {
					t.Fatal(perr)
				}
				got, err = a.resourceScopes(p, key)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestTokenNeedsLogin(t *testing.T) {
	m := open(t, "[accounts.ms]\nclient_id = \"x\"\n")
	a, err := m.Account("ms")
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Token(context.Background(), "imap")
	var re *tokens.ReloginError
	if !errors.Is(err, tokens.ErrReloginRequired) || !errors.As(err, &re) || re.Command != "mailoauth login ms" {
		t.Errorf("got %v, want a ReloginError naming mailoauth login ms", err)
	}
	// A resource the scopes do not cover is a config mistake, not a failed
	// refresh: the account's health stays as it was.
	if _, err := a.Token(context.Background(), "graph"); err == nil || !strings.Contains(err.Error(), "add graph-mail to scopes") {
		t.Errorf("graph without graph scopes: %v", err)
	}
	if _, err := m.Account("nope"); !errors.Is(err, config.ErrNoAccount) {
		t.Errorf("unknown account: %v", err)
	}
	st, err := a.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Health != HealthLoggedOut || st.LoggedIn || st.NextAction != "run: mailoauth login ms" || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
}

func TestConsentRefusesMultiTenant(t *testing.T) {
	m := open(t, "[accounts.ms]\nclient_id = \"x\"\n[accounts.g]\nprovider = \"google\"\nclient_id = \"x\"\nclient_secret = \"env:X\"\n")
	for _, name := range []string{"ms", "g"} {
		a, _ := m.Account(name)
		if _, err := a.AdminConsentURL(context.Background(), false); err == nil {
			t.Errorf("%s: admin consent URL built", name)
		}
	}
	a, _ := m.Account("ms")
	if _, err := a.AdminConsentURL(context.Background(), false); !errors.Is(err, ErrMultiTenant) {
		t.Errorf("common: %v", err)
	}
	// organizations lets any organization's administrator consent.
	m = open(t, "[accounts.org]\nclient_id = \"x\"\ntenant = \"organizations\"\n")
	a, _ = m.Account("org")
	if u, err := a.AdminConsentURL(context.Background(), false); err != nil || !strings.Contains(u, "/organizations/v2.0/adminconsent?") {
		t.Errorf("organizations: %q, %v", u, err)
	}
}

// TestScopesCover: which protocols an account's scopes ask for, with no
// network (Microsoft and Google providers come from the config alone).
func TestScopesCover(t *testing.T) {
	m := open(t, `
[accounts.mail]
client_id = "x"
scopes = ["imap", "smtp", "offline_access"]
[accounts.graph]
client_id = "x"
scopes = ["graph-mail-read"]
[accounts.default]
client_id = "x"
scopes = ["https://outlook.office365.com/.default"]
[accounts.full]
client_id = "x"
scopes = ["https://outlook.office365.com/POP.AccessAsUser.All", "Mail.Read"]
[accounts.app]
client_id = "x"
tenant = "contoso.com"
client_secret = "env:X"
flow = "client_credentials"
email = "a@contoso.com"
[accounts.g]
provider = "google"
client_id = "x"
client_secret = "env:X"
`)
	tests := []struct{ account, resource, wantErr string }{
		{"mail", "imap", ""},
		{"mail", "smtp", ""},
		{"mail", "pop", "its scopes include none for pop (POP.AccessAsUser.All); add pop to scopes"},
		{"mail", "ews", "add ews to scopes"},
		{"mail", "graph", "add graph-mail to scopes"},
		{"graph", "graph", ""},
		{"graph", "imap", "add imap, pop, smtp or ews to scopes"},
		{"default", "pop", ""},
		{"default", "smtp", ""},
		{"full", "pop3", ""},
		{"full", "imap", "add imap to scopes"},
		{"full", "graph", ""},
		{"app", "graph", ""}, // app-only: the resource's /.default, whatever the presets
		{"app", "pop", ""},
		{"g", "pop", ""},
		{"g", "graph", "Graph exists only for Microsoft accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.account+"/"+tt.resource, func(t *testing.T) {
			a, err := m.Account(tt.account)
			if err != nil {
				t.Fatal(err)
			}
			err = a.ScopesCover(context.Background(), tt.resource)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
