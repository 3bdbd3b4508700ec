package emulator

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

func TestClientCredentialsSucceeds(t *testing.T) {
	cases := []struct {
		name string
		run  func(w *wireEnv) reply
	}{
		{"secret in body", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "client_credentials", "client_id", appC, "scope", appOnly, "client_secret", secretC))
		}},
		{"secret in Basic, form-encoded per RFC 6749", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath(tContoso), strings.NewReader(form("grant_type", "client_credentials", "scope", appOnly).Encode()))
			req.Header.Set("Content-Type", formContentType)
			req.SetBasicAuth(url.QueryEscape(appC), url.QueryEscape(secretC))
			return w.do(req)
		}},
		{"PS256 + x5t#S256 std base64 with padding (MSAL Go)", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{})))
		}},
		{"PS256 + x5t#S256 base64url", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{urlB64: true})))
		}},
		{"RS256 + x5t", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{alg: jose.RS256, thumb: "x5t", urlB64: true})))
		}},
		{"RS256 + x5c only", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{alg: jose.RS256, thumb: "x5c"})))
		}},
		{"audience with the tenant GUID and the real host", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{aud: "https://login.microsoftonline.com/" + tContoso + "/oauth2/v2.0/token"})))
		}},
		{"MSAL's extra openid offline_access profile", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "client_credentials", "client_id", appC, "client_info", "1",
				"scope", appOnly+" openid offline_access profile", "client_secret", secretC))
		}},
		{"v1 endpoint with resource=", func(w *wireEnv) reply {
			return w.post("/contoso.com/oauth2/token", form("grant_type", "client_credentials", "client_id", appC,
				"resource", "https://outlook.office365.com/", "client_secret", secretC))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWireEnv(t)
			r := tc.run(w)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			for _, absent := range []string{"refresh_token", "id_token", "client_info"} {
				if _, ok := r.body[absent]; ok {
					t.Errorf("client credentials answer has %s", absent)
				}
			}
			if r.str("token_type") != "Bearer" || r.str("scope") != appOnly {
				t.Errorf("token_type %q scope %q", r.str("token_type"), r.str("scope"))
			}
			exp, _ := r.body["expires_in"].(float64)
			if exp < 3600 || exp > 5400 || r.body["ext_expires_in"] != r.body["expires_in"] {
				t.Errorf("expires_in %v ext_expires_in %v", r.body["expires_in"], r.body["ext_expires_in"])
			}
			at, ok := w.e.Lookup(r.str("access_token"))
			if !ok {
				t.Fatal("Lookup does not know the access token")
			}
			want := AccessToken{TenantID: tContoso, ClientID: appC, AppName: "Confidential", Resource: ExchangeAppID,
				Audience: "https://outlook.office365.com", Cloud: "global", Roles: []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"},
				IssuedAt: w.clock.Now(), ExpiresAt: w.clock.Now().Add(time.Duration(exp) * time.Second)}
			if diff := cmp.Diff(want, at); diff != "" {
				t.Errorf("Lookup (-want +got):\n%s", diff)
			}
			if !at.AppOnly() || !at.ActiveAt(w.clock.Now()) || !at.HasRole("imap.accessasapp") {
				t.Errorf("AppOnly/ActiveAt/HasRole wrong for %+v", at)
			}
		})
	}
}

func TestAuthorizationCodeFlow(t *testing.T) {
	w := newWireEnv(t)
	e := w.e
	e.mu.Lock()
	tenant, app, user := e.model.tenantByID(tContoso), e.model.app(appP), e.model.userByUPN("alice@contoso.com")
	e.mu.Unlock()
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	scopes, aerr := ParseScopes(Clouds["global"], imapScope+" https://graph.microsoft.com/Mail.Send openid profile email offline_access")
	if aerr != nil {
		t.Fatal(aerr)
	}
	code := e.IssueAuthCode(AuthCodeRequest{Tenant: tenant, PathTenant: "organizations", App: app, User: user,
		RedirectURI: "http://localhost:43111/cb", Platform: PlatformPublic, Scopes: scopes,
		CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256", Nonce: "n-0S6_WzA2Mj"})
	r := w.post(tokenPath("organizations"), form("grant_type", "authorization_code", "client_id", appP, "code", code,
		"redirect_uri", "http://localhost:43111/cb", "code_verifier", verifier, "client_info", "1"))
	if r.status != 200 {
		t.Fatalf("redeem: %s", r.raw)
	}
	// The token is for the first resource (Exchange); scope lists what is
	// consented on it plus the OIDC scopes.
	if got, want := r.str("scope"), "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send openid profile email offline_access"; got != want {
		t.Errorf("scope = %q, want %q", got, want)
	}
	if r.str("refresh_token") == "" {
		t.Error("no refresh_token despite offline_access")
	}
	at, _ := e.Lookup(r.str("access_token"))
	if at.Resource != ExchangeAppID || at.UPN != "alice@contoso.com" || !at.HasScope("IMAP.AccessAsUser.All") || at.AppOnly() {
		t.Errorf("Lookup = %+v", at)
	}
	// id_token: RS256 signed with the JWKS key, claims per reference §2.3.
	tok, err := jwt.ParseSigned(r.str("id_token"), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := tok.Claims(e.PublicKeys().Keys[0].Key, &claims); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	for k, v := range map[string]string{"aud": appP, "iss": w.srv.URL + "/" + tContoso + "/v2.0", "nonce": "n-0S6_WzA2Mj",
		"tid": tContoso, "preferred_username": "alice@contoso.com", "email": "alice@contoso.com", "ver": "2.0"} {
		if claims[k] != v {
			t.Errorf("id_token %s = %v, want %s", k, claims[k], v)
		}
	}
	raw, _ := base64.RawURLEncoding.DecodeString(r.str("client_info"))
	var ci map[string]string
	_ = json.Unmarshal(raw, &ci)
	if ci["utid"] != tContoso || ci["uid"] != at.UserOID {
		t.Errorf("client_info = %s", raw)
	}

	t.Run("plain PKCE, no offline_access, no openid", func(t *testing.T) {
		s, _ := ParseScopes(Clouds["global"], imapScope)
		c := e.IssueAuthCode(AuthCodeRequest{Tenant: tenant, PathTenant: tContoso, App: app, User: user,
			RedirectURI: "http://127.0.0.1/cb", Platform: PlatformPublic, Scopes: s, CodeChallenge: verifier})
		r := w.post(tokenPath(tContoso), form("grant_type", "authorization_code", "client_id", appP, "code", c,
			"redirect_uri", "http://127.0.0.1/cb", "code_verifier", verifier))
		if r.status != 200 {
			t.Fatalf("redeem: %s", r.raw)
		}
		for _, absent := range []string{"refresh_token", "id_token", "client_info"} {
			if _, ok := r.body[absent]; ok {
				t.Errorf("answer has %s", absent)
			}
		}
	})
	t.Run("confidential web app with secret", func(t *testing.T) {
		e.mu.Lock()
		appConf := e.model.app(appC)
		e.mu.Unlock()
		s, _ := ParseScopes(Clouds["global"], imapScope)
		c := e.IssueAuthCode(AuthCodeRequest{Tenant: tenant, PathTenant: tContoso, App: appConf, User: user,
			RedirectURI: "https://app.example/cb", Platform: PlatformWeb, Scopes: s})
		r := w.post(tokenPath(tContoso), form("grant_type", "authorization_code", "client_id", appC, "code", c,
			"redirect_uri", "https://app.example/cb", "client_secret", secretC))
		if r.status != 200 {
			t.Fatalf("redeem: %s", r.raw)
		}
	})
}

func TestRefreshRotationAndResources(t *testing.T) {
	w := newWireEnv(t)
	first := w.ropc(imapScope + " offline_access openid")
	if first.status != 200 {
		t.Fatal(first.raw)
	}
	rt1 := first.str("refresh_token")
	refresh := func(tok string, kv ...string) reply {
		return w.post(tokenPath("contoso.com"), form(append([]string{"grant_type", "refresh_token", "client_id", appP, "refresh_token", tok, "client_info", "1"}, kv...)...))
	}
	w.clock.Advance(30 * time.Minute)
	r := refresh(rt1)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	rt2 := r.str("refresh_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token not rotated: %q", rt2)
	}
	if at, _ := w.e.Lookup(r.str("access_token")); at.Resource != ExchangeAppID {
		t.Errorf("refresh without scope: resource %s, want Exchange", at.Resource)
	}
	if r.str("id_token") == "" || r.str("client_info") == "" {
		t.Error("refresh lost openid / client_info")
	}
	// The old refresh token stays valid (reference §2.4).
	if r := refresh(rt1); r.status != 200 {
		t.Errorf("old refresh token refused: %s", r.raw)
	}
	// One refresh token serves Graph too; the first resource wins.
	r = refresh(rt2, "scope", "https://graph.microsoft.com/Mail.Send "+imapScope)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	at, _ := w.e.Lookup(r.str("access_token"))
	if at.Resource != GraphAppID || at.Audience != "https://graph.microsoft.com" || !at.HasScope("Mail.Send") {
		t.Errorf("graph refresh Lookup = %+v", at)
	}
	if !strings.HasPrefix(r.str("scope"), "https://graph.microsoft.com/") {
		t.Errorf("scope = %q", r.str("scope"))
	}
	// Bare Graph names stay bare in the answer.
	r = refresh(rt2, "scope", "Mail.Send")
	if r.status != 200 || !strings.Contains(" "+r.str("scope")+" ", " Mail.Send ") {
		t.Errorf("bare scope answer %q: %s", r.str("scope"), r.raw)
	}
	// Sliding inactivity window: 80 days, use, 80 days again is fine.
	w.clock.Advance(80 * 24 * time.Hour)
	r = refresh(rt2)
	if r.status != 200 {
		t.Fatal(r.raw)
	}
	w.clock.Advance(80 * 24 * time.Hour)
	if r := refresh(r.str("refresh_token")); r.status != 200 {
		t.Errorf("refresh within the sliding window refused: %s", r.raw)
	}
}

func TestDeviceCodeFlow(t *testing.T) {
	for _, grant := range []string{grantDeviceURN, grantDeviceShort} {
		t.Run(grant, func(t *testing.T) {
			w := newWireEnv(t)
			r := w.post("/organizations/oauth2/v2.0/devicecode", form("client_id", appP, "scope", imapScope+" openid offline_access"))
			if r.status != 200 {
				t.Fatal(r.raw)
			}
			uc, dc := r.str("user_code"), r.str("device_code")
			if len(uc) != 9 || r.body["expires_in"] != 900.0 || r.body["interval"] != 5.0 ||
				r.str("verification_uri") != w.srv.URL+"/devicelogin" || !strings.Contains(r.str("message"), uc) {
				t.Fatalf("devicecode answer: %s", r.raw)
			}
			if _, ok := r.body["verification_uri_complete"]; ok {
				t.Error("verification_uri_complete is not sent by Microsoft")
			}
			poll := func() reply {
				return w.post(tokenPath("organizations"), form("grant_type", grant, "client_id", appP, "device_code", dc, "scope", imapScope+" openid offline_access profile", "client_info", "1"))
			}
			if p := poll(); p.str("error") != "authorization_pending" {
				t.Fatalf("first poll: %s", p.raw)
			}
			// Approve through the HTTP admin API, as an out-of-process test would.
			a := w.postJSON("/_emulator/devicecode/approve", map[string]string{"user_code": strings.ToLower(uc), "user": "alice@contoso.com"})
			if a.status != 200 {
				t.Fatalf("approve: %s", a.raw)
			}
			p := poll()
			if p.status != 200 || p.str("refresh_token") == "" || p.str("id_token") == "" {
				t.Fatalf("poll after approval: %s", p.raw)
			}
			if at, _ := w.e.Lookup(p.str("access_token")); at.TenantID != tContoso || at.UPN != "alice@contoso.com" {
				t.Errorf("Lookup = %+v", at)
			}
			if p := poll(); p.str("error") != "bad_verification_code" {
				t.Errorf("poll after redemption: %s", p.raw)
			}
			if got := w.e.Counts()["token:"+grant]; got != 3 {
				t.Errorf("count token:%s = %d, want 3", grant, got)
			}
		})
	}
	t.Run("v1 devicecode spells verification_url", func(t *testing.T) {
		w := newWireEnv(t)
		r := w.post("/contoso.com/oauth2/devicecode", form("client_id", appP, "scope", imapScope))
		if r.str("verification_url") == "" {
			t.Errorf("answer: %s", r.raw)
		}
	})
	t.Run("approval by a user of another tenant on a tenant path", func(t *testing.T) {
		w := newWireEnv(t)
		r := w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appP, "scope", imapScope))
		err := w.e.ApproveDeviceCodeAs(r.str("user_code"), "frank@fabrikam.com")
		var ae *Error
		if !asAAD(err, &ae) || ae.Code != 50034 {
			t.Errorf("err = %v, want AADSTS50034", err)
		}
	})
	t.Run("approval in a foreign tenant records consent there", func(t *testing.T) {
		w := newWireEnv(t)
		r := w.post("/common/oauth2/v2.0/devicecode", form("client_id", appP, "scope", imapScope))
		if err := w.e.ApproveDeviceCodeAs(r.str("user_code"), "frank@fabrikam.com"); err != nil {
			t.Fatal(err)
		}
		p := w.post(tokenPath("common"), form("grant_type", grantDeviceShort, "client_id", appP, "device_code", r.str("device_code")))
		if at, _ := w.e.Lookup(p.str("access_token")); p.status != 200 || at.TenantID != tFabrikam {
			t.Fatalf("poll: %s (%+v)", p.raw, at)
		}
	})
}

func asAAD(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

func TestTokenResponseSettings(t *testing.T) {
	w := newWireEnv(t)
	r := w.postJSON("/_emulator/settings", map[string]any{"expires_in": 1234, "refresh_in": 600})
	if r.status != 200 || r.body["expires_in"] != 1234.0 || r.body["device_code_interval"] != 5.0 {
		t.Fatalf("settings: %s", r.raw)
	}
	t1 := w.ropc(imapScope)
	if t1.body["expires_in"] != 1234.0 || t1.body["ext_expires_in"] != 1234.0 || t1.body["refresh_in"] != 600.0 {
		t.Errorf("pinned lifetimes not used: %s", t1.raw)
	}
	at, _ := w.e.Lookup(t1.str("access_token"))
	w.clock.Advance(1234 * time.Second)
	if at2, _ := w.e.Lookup(t1.str("access_token")); at2.ActiveAt(w.clock.Now()) || !at.ActiveAt(w.clock.Now().Add(-time.Second)) {
		t.Error("access token expiry not at issue + expires_in")
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	w := newWireEnv(t)
	cases := []struct {
		name, path, host string
		want             map[string]any
	}{
		{"common", "/common/v2.0/.well-known/openid-configuration", "", map[string]any{
			"issuer":         w.srv.URL + "/{tenantid}/v2.0",
			"token_endpoint": w.srv.URL + "/common/oauth2/v2.0/token",
			"jwks_uri":       w.srv.URL + "/common/discovery/v2.0/keys",
			"msgraph_host":   "graph.microsoft.com",
		}},
		{"tenant by domain", "/contoso.com/v2.0/.well-known/openid-configuration", "", map[string]any{
			"issuer":                        w.srv.URL + "/" + tContoso + "/v2.0",
			"device_authorization_endpoint": w.srv.URL + "/contoso.com/oauth2/v2.0/devicecode",
			"authorization_endpoint":        w.srv.URL + "/contoso.com/oauth2/v2.0/authorize",
			"tenant_region_scope":           "WW",
		}},
		{"US Gov cloud by Host", "/gov.example/v2.0/.well-known/openid-configuration", "login.microsoftonline.us", map[string]any{
			"issuer":              "http://login.microsoftonline.us/" + tGov + "/v2.0",
			"msgraph_host":        "graph.microsoft.us",
			"cloud_instance_name": "microsoftonline.us",
		}},
		{"v1", "/contoso.com/.well-known/openid-configuration", "", map[string]any{
			"issuer":         "https://sts.windows.net/" + tContoso + "/",
			"token_endpoint": w.srv.URL + "/contoso.com/oauth2/token",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.host != "" {
				hdr = []string{"Host", tc.host}
			}
			r := w.get(tc.path, hdr...)
			if r.status != 200 {
				t.Fatal(r.raw)
			}
			got := map[string]any{}
			for k := range tc.want {
				got[k] = r.body[k]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if r.header.Get("Cache-Control") != "max-age=86400, private" {
				t.Errorf("Cache-Control = %q", r.header.Get("Cache-Control"))
			}
		})
	}
	t.Run("keys", func(t *testing.T) {
		r := w.get("/common/discovery/v2.0/keys")
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(r.raw), &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("keys: %v %s", err, r.raw)
		}
		keys, _ := r.body["keys"].([]any)
		k := keys[0].(map[string]any)
		for _, f := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} {
			if k[f] == nil {
				t.Errorf("key has no %s", f)
			}
		}
	})
	t.Run("v1 keys", func(t *testing.T) {
		if r := w.get("/" + tContoso + "/discovery/keys"); r.status != 200 || r.body["keys"] == nil {
			t.Errorf("v1 keys: %s", r.raw)
		}
	})
	t.Run("instance discovery", func(t *testing.T) {
		r := w.get("/common/discovery/instance?api-version=1.1&authorization_endpoint=x", "Host", "login.microsoftonline.com")
		md, _ := r.body["metadata"].([]any)
		if r.status != 200 || len(md) != 1 || !strings.Contains(r.raw, `"login.windows.net"`) ||
			r.str("tenant_discovery_endpoint") != "http://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration" {
			t.Errorf("instance discovery: %s", r.raw)
		}
	})
	t.Run("tenant of another cloud", func(t *testing.T) {
		r := w.get("/gov.example/v2.0/.well-known/openid-configuration")
		if r.code() != 90038 {
			t.Errorf("got %s", r.raw)
		}
	})
}

func TestCorrelationIDEcho(t *testing.T) {
	w := newWireEnv(t)
	id := "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	r := w.post(tokenPath("contoso.com"), form("grant_type", "implicit", "client_id", appP), "client-request-id", id)
	if r.str("correlation_id") != id || r.header.Get("client-request-id") != id {
		t.Errorf("correlation_id %q, header %q, want %s", r.str("correlation_id"), r.header.Get("client-request-id"), id)
	}
	if r := w.post(tokenPath("contoso.com"), form("grant_type", "implicit", "client_id", appP), "client-request-id", "not-a-guid"); !isGUID(r.str("correlation_id")) || r.str("correlation_id") == "not-a-guid" {
		t.Errorf("bad client-request-id echoed: %s", r.raw)
	}
}
