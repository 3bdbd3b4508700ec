package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMicrosoftEndpoints(t *testing.T) {
	tests := []struct {
		name      string
		opts      MicrosoftOptions
		wantToken string
		wantErr   string
	}{
		{"default common", MicrosoftOptions{}, "https://login.microsoftonline.com/common/oauth2/v2.0/token", ""},
		{"organizations", MicrosoftOptions{Tenant: "Organizations"}, "https://login.microsoftonline.com/organizations/oauth2/v2.0/token", ""},
		{"guid", MicrosoftOptions{Tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47"}, "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token", ""},
		{"domain usgov", MicrosoftOptions{Tenant: "contoso.onmicrosoft.us", Cloud: "usgov"}, "https://login.microsoftonline.us/contoso.onmicrosoft.us/oauth2/v2.0/token", ""},
		{"consumers", MicrosoftOptions{Tenant: "consumers"}, "https://login.microsoftonline.com/consumers/oauth2/v2.0/token", ""},
		{"domain usgov-dod", MicrosoftOptions{Tenant: "army.onmicrosoft.us", Cloud: "usgov-dod"}, "https://login.microsoftonline.us/army.onmicrosoft.us/oauth2/v2.0/token", ""},
		{"china", MicrosoftOptions{Tenant: "contoso.partner.onmschina.cn", Cloud: "china"}, "https://login.partner.microsoftonline.cn/contoso.partner.onmschina.cn/oauth2/v2.0/token", ""},
		{"authority override", MicrosoftOptions{Tenant: "contoso.com", Authority: "https://127.0.0.1:8443/"}, "https://127.0.0.1:8443/contoso.com/oauth2/v2.0/token", ""},
		{"authority with path", MicrosoftOptions{Authority: "http://127.0.0.1:9000/emu"}, "http://127.0.0.1:9000/emu/common/oauth2/v2.0/token", ""},
		{"bad tenant", MicrosoftOptions{Tenant: "not a tenant"}, "", "invalid microsoft tenant"},
		{"bad cloud", MicrosoftOptions{Cloud: "germany"}, "", "unknown microsoft cloud"},
		{"bad authority", MicrosoftOptions{Authority: "ftp://x"}, "", "invalid authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Microsoft(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Microsoft() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantToken, p.Endpoints.TokenURL); diff != "" {
				t.Errorf("token URL (-want +got):\n%s", diff)
			}
			if !strings.HasSuffix(p.Endpoints.DeviceAuthURL, "/oauth2/v2.0/devicecode") || !strings.HasSuffix(p.Endpoints.AuthURL, "/oauth2/v2.0/authorize") {
				t.Errorf("endpoints = %+v", p.Endpoints)
			}
		})
	}
}

func TestExpandScopes(t *testing.T) {
	ms, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com"})
	usgov, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com", Cloud: "usgov"})
	dod, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com", Cloud: "usgov-dod"})
	china, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com", Cloud: "china"})
	oidc := &Provider{Kind: KindOIDC}
	tests := []struct {
		name    string
		p       *Provider
		in      []string
		d       Delegation
		want    []string
		wantErr string
	}{
		{"ms mail", ms, []string{"imap", "pop smtp", "offline_access", "imap"}, Delegated, []string{
			"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/POP.AccessAsUser.All",
			"https://outlook.office.com/SMTP.Send", "offline_access"}, ""},
		{"ms graph", ms, []string{"graph-mail", "graph-mail-read", "graph-mail-send", "ews"}, Delegated, []string{
			"https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send",
			"https://graph.microsoft.com/Mail.Read", "https://outlook.office.com/EWS.AccessAsUser.All"}, ""},
		{"ms app-only", ms, []string{"imap", "smtp", "offline_access"}, AppOnly, []string{"https://outlook.office365.com/.default"}, ""},
		{"ms app-only graph", ms, []string{"graph-mail-send"}, AppOnly, []string{"https://graph.microsoft.com/.default"}, ""},
		{"usgov", usgov, []string{"imap", "graph-mail-read"}, Delegated, []string{"https://outlook.office365.us/IMAP.AccessAsUser.All", "https://graph.microsoft.us/Mail.Read"}, ""},
		{"usgov-dod", dod, []string{"smtp", "graph-mail-send"}, Delegated, []string{"https://outlook-dod.office365.us/SMTP.Send", "https://dod-graph.microsoft.us/Mail.Send"}, ""},
		{"china app-only", china, []string{"pop", "graph-mail"}, AppOnly, []string{"https://partner.outlook.cn/.default", "https://microsoftgraph.chinacloudapi.cn/.default"}, ""},
		{"pass through", ms, []string{"https://outlook.office365.com/IMAP.AccessAsUser.All openid"}, Delegated, []string{"https://outlook.office365.com/IMAP.AccessAsUser.All", "openid"}, ""},
		{"google", Google(), []string{"imap", "smtp", "offline_access", "email"}, Delegated, []string{"https://mail.google.com/", "email"}, ""},
		{"google graph", Google(), []string{"graph-mail"}, Delegated, nil, "does not exist for google"},
		{"oidc offline", oidc, []string{"offline_access", "mail"}, Delegated, []string{"offline_access", "mail"}, ""},
		{"oidc imap", oidc, []string{"imap"}, Delegated, nil, "no meaning for a generic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.ExpandScopes(tt.in, tt.d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ExpandScopes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitByResource(t *testing.T) {
	ms, _ := Microsoft(MicrosoftOptions{})
	got := ms.SplitByResource([]string{
		"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access", "https://graph.microsoft.com/Mail.Send",
		"https://outlook.office.com/SMTP.Send", "User.Read", "openid",
	})
	want := []ResourceScopes{
		{Resource: "https://outlook.office.com", Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access", "openid"}},
		{Resource: "https://graph.microsoft.com", Scopes: []string{"https://graph.microsoft.com/Mail.Send", "User.Read", "offline_access", "openid"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SplitByResource (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ResourceScopes{{Scopes: []string{"a", "b"}}}, Google().SplitByResource([]string{"a", "b"})); diff != "" {
		t.Errorf("google (-want +got):\n%s", diff)
	}
}

func TestValidateAppOnlyScopes(t *testing.T) {
	ms, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com"})
	tests := []struct {
		in      []string
		wantErr string
	}{
		{[]string{"https://outlook.office365.com/.default"}, ""},
		{[]string{"https://graph.microsoft.com/.default", "openid", "offline_access", "profile"}, ""},
		{[]string{}, "need one <resource>/.default"},
		{[]string{"https://graph.microsoft.com/.default", "https://outlook.office365.com/.default"}, "one resource, but 2"},
		{[]string{"https://graph.microsoft.com/Mail.Send"}, "accept only <resource>/.default"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, "+"), func(t *testing.T) {
			err := ms.ValidateAppOnlyScopes(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := Google().ValidateAppOnlyScopes([]string{"x"}); err != nil {
		t.Errorf("google: %v", err)
	}
}

func TestCheckDeviceFlow(t *testing.T) {
	if err := Google().CheckDeviceFlow([]string{"email", "https://mail.google.com/"}); err == nil || !strings.Contains(err.Error(), "authorization code flow") {
		t.Errorf("google mail device flow error = %v", err)
	}
	if err := Google().CheckDeviceFlow([]string{"email", "openid"}); err != nil {
		t.Errorf("google openid device flow: %v", err)
	}
	ms, _ := Microsoft(MicrosoftOptions{})
	if err := ms.CheckDeviceFlow([]string{"https://outlook.office.com/IMAP.AccessAsUser.All"}); err != nil {
		t.Errorf("microsoft: %v", err)
	}
	if err := (&Provider{Kind: KindOIDC}).CheckDeviceFlow(nil); err == nil {
		t.Error("oidc without device endpoint: no error")
	}
}

func TestAdminConsentURL(t *testing.T) {
	p, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com"})
	got, err := p.AdminConsentURL(false, "cid", "http://localhost:8400/", "https://outlook.office365.com/.default", "st")
	if err != nil {
		t.Fatal(err)
	}
	want := "https://login.microsoftonline.com/contoso.com/v2.0/adminconsent?client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%3A8400%2F&scope=https%3A%2F%2Foutlook.office365.com%2F.default&state=st"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v2 (-want +got):\n%s", diff)
	}
	got, _ = p.AdminConsentURL(true, "cid", "http://localhost:8400/", "ignored", "st")
	want = "https://login.microsoftonline.com/contoso.com/adminconsent?client_id=cid&redirect_uri=http%3A%2F%2Flocalhost%3A8400%2F&state=st"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v1 (-want +got):\n%s", diff)
	}
	common, _ := Microsoft(MicrosoftOptions{})
	if _, err := common.AdminConsentURL(false, "cid", "http://localhost/", "x/.default", ""); err == nil || !strings.Contains(err.Error(), "tenant GUID") {
		t.Errorf("common: error = %v", err)
	}
}

func TestDiscover(t *testing.T) {
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/oidc/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"issuer":"` + srv.URL + `/oidc","token_endpoint":"` + srv.URL + `/oidc/token","device_authorization_endpoint":"` + srv.URL + `/oidc/device","token_endpoint_auth_signing_alg_values_supported":["ES256","PS256"]}`))
	})
	// RFC 8414 puts the well-known segment before the issuer's path.
	mux.HandleFunc("/.well-known/oauth-authorization-server/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"issuer":"` + srv.URL + `/plain","token_endpoint":"` + srv.URL + `/plain/token"}`))
	})
	mux.HandleFunc("/liar/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"issuer":"https://elsewhere.example","token_endpoint":"https://elsewhere.example/token"}`))
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	p, err := Discover(ctx, srv.Client(), srv.URL+"/oidc")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != KindOIDC || p.Endpoints.TokenURL != srv.URL+"/oidc/token" || p.Endpoints.DeviceAuthURL != srv.URL+"/oidc/device" {
		t.Errorf("oidc provider = %+v", p)
	}
	if diff := cmp.Diff([]string{"ES256", "PS256"}, p.Endpoints.TokenAuthSigningAlgs); diff != "" {
		t.Errorf("algs (-want +got):\n%s", diff)
	}
	p, err = Discover(ctx, srv.Client(), srv.URL+"/plain")
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoints.TokenURL != srv.URL+"/plain/token" {
		t.Errorf("rfc8414 token URL = %q", p.Endpoints.TokenURL)
	}
	if _, err := Discover(ctx, srv.Client(), srv.URL+"/liar"); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("issuer mismatch: error = %v", err)
	}
	if _, err := Discover(ctx, srv.Client(), srv.URL+"/none"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("missing: error = %v", err)
	}
	if _, err := Discover(ctx, srv.Client(), "http://auth.example.com"); err == nil || !strings.Contains(err.Error(), "https is required") {
		t.Errorf("http issuer: error = %v", err)
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://a.example","token_endpoint":"https://a.example/t","jwks_uri":"https://a.example/k"}`))
	f.Add([]byte(`{"issuer":"http://127.0.0.1:1/","token_endpoint":"http://127.0.0.1:1/t","token_endpoint_auth_methods_supported":["private_key_jwt"]}`))
	f.Add([]byte(`{"issuer":"https://a","token_endpoint":"http://evil.example/t"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetadata(data)
		if err != nil {
			return
		}
		if m.Issuer == "" || m.TokenEndpoint == "" {
			t.Fatalf("accepted a document without issuer or token endpoint: %+v", m)
		}
		if checkEndpointURL(m.TokenEndpoint) != nil {
			t.Fatalf("accepted a bad token endpoint %q", m.TokenEndpoint)
		}
		_ = FromMetadata(m)
	})
}

func TestMailServers(t *testing.T) {
	global, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.com"})
	consumers, _ := Microsoft(MicrosoftOptions{Tenant: "consumers"})
	china, _ := Microsoft(MicrosoftOptions{Tenant: "contoso.partner.onmschina.cn", Cloud: "china"})
	tests := []struct {
		name string
		p    *Provider
		want MailServers
	}{
		{"global", global, MailServers{IMAP: "outlook.office365.com:993", POP: "outlook.office365.com:995", SMTP: "smtp.office365.com:587"}},
		{"consumers", consumers, MailServers{IMAP: "outlook.office365.com:993", POP: "outlook.office365.com:995", SMTP: "smtp-mail.outlook.com:587"}},
		{"china", china, MailServers{IMAP: "partner.outlook.cn:993", POP: "partner.outlook.cn:995", SMTP: "smtp.partner.outlook.cn:587"}},
		{"google", Google(), MailServers{IMAP: "imap.gmail.com:993", POP: "pop.gmail.com:995", SMTP: "smtp.gmail.com:587"}},
		{"oidc", &Provider{Kind: KindOIDC}, MailServers{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.p.MailServers()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
