package emulator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateRedirectURI(t *testing.T) {
	w := newWireEnv(t)
	w.e.mu.Lock()
	p, c, s := w.e.model.app(appP), w.e.model.app(appC), w.e.model.app(appS)
	w.e.mu.Unlock()
	cases := []struct {
		app      *App
		uri      string
		platform Platform
		code     int
	}{
		{p, "http://localhost", PlatformPublic, 0},
		{p, "http://localhost:49152", PlatformPublic, 0},   // port ignored for loopback
		{p, "http://localhost:49152/", PlatformPublic, 0},  // no path = "/"
		{p, "http://127.0.0.1:8080/cb", PlatformPublic, 0}, // port ignored for 127.0.0.1
		{p, "http://127.0.0.1:8080/other", "", 50011},      // path must match
		{p, "http://[::1]:8080/cb", "", 50011},             // IPv6 loopback unsupported
		{p, "https://localhost/", "", 50011},               // scheme must match
		{p, "https://spa.example/cb", PlatformSPA, 0},      // exact
		{p, "https://spa.example/CB", "", 50011},           // case-sensitive path
		{c, "https://app.example/cb", PlatformWeb, 0},      // web
		{c, "https://app.example:444/cb", "", 50011},       // port matters off loopback
		{s, "http://localhost", "", 500113},                // nothing registered
		{p, "http://localhost.evil.example/", "", 50011},   // not loopback
	}
	for _, tc := range cases {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := w.e.ValidateRedirectURI(tc.app, tc.uri)
			code := 0
			if err != nil {
				code = err.Code
			}
			if got != tc.platform || code != tc.code {
				t.Errorf("got (%q, %d), want (%q, %d)", got, code, tc.platform, tc.code)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	type res struct {
		App        string
		Identifier string
		Default    bool
		Perms      []string
	}
	cases := []struct {
		raw   string
		oidc  []string
		res   []res
		code  int
		cloud string
	}{
		{raw: "openid Profile offline_access", oidc: []string{"openid", "profile", "offline_access"}},
		{raw: "https://outlook.office.com/imap.accessasuser.all https://outlook.office.com/SMTP.Send",
			res: []res{{ExchangeAppID, "https://outlook.office.com", false, []string{"IMAP.AccessAsUser.All", "SMTP.Send"}}}},
		{raw: "Mail.Send User.Read", res: []res{{GraphAppID, "", false, []string{"Mail.Send", "User.Read"}}}},
		{raw: "https://outlook.office365.com//.default", res: []res{{ExchangeAppID, "https://outlook.office365.com", true, nil}}},
		{raw: "00000003-0000-0000-c000-000000000000/.default", res: []res{{GraphAppID, "00000003-0000-0000-c000-000000000000", true, nil}}},
		{raw: "https://ps.outlook.com/.default", res: []res{{ExchangeAppID, "https://ps.outlook.com", true, nil}}},
		{raw: "https://graph.microsoft.com/Mail.Send https://outlook.office.com/SMTP.Send",
			res: []res{{GraphAppID, "https://graph.microsoft.com", false, []string{"Mail.Send"}}, {ExchangeAppID, "https://outlook.office.com", false, []string{"SMTP.Send"}}}},
		{raw: "https://outlook.office365.us/IMAP.AccessAsUser.All", cloud: "usgov", res: []res{{ExchangeAppID, "https://outlook.office365.us", false, []string{"IMAP.AccessAsUser.All"}}}},
		{raw: "https://partner.outlook.cn/.default", cloud: "china", res: []res{{ExchangeAppID, "https://partner.outlook.cn", true, nil}}},
		{raw: "https://outlook.office365.us/IMAP.AccessAsUser.All", code: 500011},
		{raw: "https://example.com/Read", code: 500011},
		{raw: "Nope.Read", code: 70011},
		{raw: "https://graph.microsoft.com/.default Mail.Send", code: 70011},
		{raw: "urn:x", code: 70011},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			cloud := "global"
			if tc.cloud != "" {
				cloud = tc.cloud
			}
			s, err := ParseScopes(Clouds[cloud], tc.raw)
			if tc.code != 0 {
				if err == nil || err.Code != tc.code {
					t.Fatalf("err = %v, want AADSTS%d", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []res
			for _, r := range s.Resources {
				got = append(got, res{r.Resource.AppID, r.Identifier, r.Default, r.Perms})
			}
			if diff := cmp.Diff(tc.res, got); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.oidc, s.OIDC); diff != "" {
				t.Errorf("oidc (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindAppAndTenants(t *testing.T) {
	w := newWireEnv(t)
	global := Clouds["global"]
	cases := []struct {
		tenant, client string
		code           int
	}{
		{"common", appP, 0},
		{"organizations", appP, 0},
		{"common", appS, 50194},
		{"organizations", appS, 50194},
		{"consumers", appP, 9002332},
		{"consumers", appM, 0},
		{"contoso.com", appM, 9002346},
		{"fabrikam.com", appP, 0}, // multi-tenant: found (service principal is a separate check)
		{"fabrikam.com", appC, 700016},
		{"CONTOSO.COM", appC, 0},
		{tContoso, "not-a-guid", 700016},
		{tContoso, appG, 700016}, // app of another cloud
	}
	for _, tc := range cases {
		t.Run(tc.tenant+"/"+tc.client, func(t *testing.T) {
			ref, err := w.e.resolveTenantSegment(tc.tenant, global)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.e.FindApp(ref, tc.client)
			code := 0
			if err != nil {
				code = err.Code
			}
			if code != tc.code {
				t.Errorf("AADSTS %d, want %d (%v)", code, tc.code, err)
			}
		})
	}
}

func TestConsentLifecycle(t *testing.T) {
	w := newWireEnv(t)
	e := w.e
	// Frank (Fabrikam) uses the multi-tenant public app: no service
	// principal in Fabrikam yet, so ROPC gets 65001.
	ropc := func() reply {
		return w.post(tokenPath("fabrikam.com"), form("grant_type", "password", "client_id", appP,
			"username", "frank@fabrikam.com", "password", "frank-pw", "scope", imapScope))
	}
	if r := ropc(); r.code() != 65001 {
		t.Fatalf("before consent: %s", r.raw)
	}
	e.mu.Lock()
	fab, app, frank := e.model.tenantByID(tFabrikam), e.model.app(appP), e.model.userByUPN("frank@fabrikam.com")
	e.mu.Unlock()
	s, _ := ParseScopes(Clouds["global"], imapScope+" Mail.Send")
	if diff := cmp.Diff([]string{imapScope, "Mail.Send"}, e.MissingConsent(fab, app, frank, s)); diff != "" {
		t.Errorf("MissingConsent (-want +got):\n%s", diff)
	}
	e.RecordUserConsent(fab, app, frank, s)
	if m := e.MissingConsent(fab, app, frank, s); len(m) != 0 {
		t.Errorf("still missing %v", m)
	}
	if !e.HasServicePrincipal(fab, app) {
		t.Error("consent did not create the service principal")
	}
	if r := ropc(); r.status != 200 {
		t.Fatalf("after consent: %s", r.raw)
	}
	// Admin consent of .default grants every registered permission,
	// application roles included, and the adminconsent scope lists them.
	d, _ := ParseScopes(Clouds["global"], "https://graph.microsoft.com/.default")
	granted := e.RecordAdminConsent(fab, app, d)
	if diff := cmp.Diff([]string{"https://graph.microsoft.com/Mail.Send", "https://graph.microsoft.com/User.Read"}, granted); diff != "" {
		t.Errorf("granted (-want +got):\n%s", diff)
	}
	// Revoking through the admin API removes the service principal.
	if r := w.postJSON("/_emulator/consent", ConsentChange{Tenant: "fabrikam.com", ClientID: appP, Revoke: true}); r.status != 200 {
		t.Fatal(r.raw)
	}
	if r := ropc(); r.code() != 65001 {
		t.Errorf("after revoke: %s", r.raw)
	}
}
