package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestTokenErrors checks every error case of the token and devicecode
// endpoints at the wire: HTTP status, OAuth error, AADSTS code, suberror.
func TestTokenErrors(t *testing.T) {
	key2, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		status   int
		err      string
		code     int
		suberror string
	}
	// deviceCode starts a device flow for client and returns its codes.
	deviceCode := func(w *wireEnv, client string) (device, user string) {
		r := w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", client, "scope", imapScope+" offline_access"))
		if r.status != 200 {
			t.Fatalf("devicecode: %d %s", r.status, r.raw)
		}
		return r.str("device_code"), r.str("user_code")
	}
	poll := func(w *wireEnv, client, device string, extra ...string) reply {
		f := form(append([]string{"grant_type", grantDeviceURN, "client_id", client, "device_code", device}, extra...)...)
		return w.post(tokenPath("contoso.com"), f)
	}
	code := func(w *wireEnv, req AuthCodeRequest) string {
		e := w.e
		e.mu.Lock()
		req.Tenant = e.model.tenantByID(tContoso)
		if req.App == nil {
			req.App = e.model.app(appP)
		}
		if req.User == nil {
			req.User = e.model.userByUPN("alice@contoso.com")
		}
		e.mu.Unlock()
		if req.RedirectURI == "" {
			req.RedirectURI = "http://localhost:5000"
		}
		if req.Platform == "" {
			req.Platform = PlatformPublic
		}
		if req.PathTenant == "" {
			req.PathTenant = "organizations"
		}
		if len(req.Scopes.Resources) == 0 {
			s, _ := ParseScopes(Clouds["global"], imapScope+" openid offline_access")
			req.Scopes = s
		}
		return e.IssueAuthCode(req)
	}
	redeem := func(w *wireEnv, c string, extra ...string) reply {
		f := form(append([]string{"grant_type", "authorization_code", "client_id", appP, "code", c,
			"redirect_uri", "http://localhost:5000"}, extra...)...)
		return w.post(tokenPath("organizations"), f)
	}
	rt := func(w *wireEnv) string {
		r := w.ropc(imapScope + " offline_access")
		if r.status != 200 {
			t.Fatalf("ropc: %s", r.raw)
		}
		return r.str("refresh_token")
	}
	refresh := func(w *wireEnv, tok string, extra ...string) reply {
		f := form(append([]string{"grant_type", "refresh_token", "client_id", appP, "refresh_token", tok}, extra...)...)
		return w.post(tokenPath("contoso.com"), f)
	}
	ccg := func(w *wireEnv, tenant string, kv ...string) reply {
		return w.post(tokenPath(tenant), form(append([]string{"grant_type", "client_credentials", "client_id", appC}, kv...)...))
	}
	s256 := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
	verifier := "dBjftJeZ4CVP-mJ0cyhqaurrBcUmIiH7lb2HQ3YuFmE"

	cases := []struct {
		name string
		run  func(w *wireEnv) reply
		want want
	}{
		// Client authentication.
		{"7000218 device flow with public client flows off", func(w *wireEnv) reply {
			d, _ := deviceCode(w, appN)
			return poll(w, appN, d)
		}, want{400, "invalid_client", 7000218, ""}},
		{"7000218 client credentials without a credential", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", appOnly)
		}, want{400, "invalid_client", 7000218, ""}},
		{"7000218 ROPC with public client flows off", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appN, "username", "alice@contoso.com", "password", "alice-pw", "scope", imapScope))
		}, want{400, "invalid_client", 7000218, ""}},
		{"700025 public client sends a secret", func(w *wireEnv) reply {
			d, _ := deviceCode(w, appP)
			return poll(w, appP, d, "client_secret", "x")
		}, want{400, "invalid_client", 700025, ""}},
		{"7000215 wrong secret", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", appOnly, "client_secret", "nope")
		}, want{401, "invalid_client", 7000215, ""}},
		{"7000215 secret id instead of value", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", appOnly, "client_secret", secretIDC)
		}, want{401, "invalid_client", 7000215, ""}},
		{"7000215 wrong secret in Basic", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"),
				strings.NewReader(form("grant_type", "client_credentials", "scope", appOnly).Encode()))
			req.Header.Set("Content-Type", formContentType)
			req.SetBasicAuth(appC, "wrong")
			return w.do(req)
		}, want{401, "invalid_client", 7000215, ""}},
		{"90023 client id in Basic differs from the body", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"),
				strings.NewReader(form("grant_type", "client_credentials", "client_id", appP, "scope", appOnly).Encode()))
			req.Header.Set("Content-Type", formContentType)
			req.SetBasicAuth(appC, secretC)
			return w.do(req)
		}, want{400, "invalid_request", 90023, ""}},
		{"90023 secret in Basic and in the body", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"),
				strings.NewReader(form("grant_type", "client_credentials", "scope", appOnly, "client_secret", secretC).Encode()))
			req.Header.Set("Content-Type", formContentType)
			req.SetBasicAuth(appC, secretC)
			return w.do(req)
		}, want{400, "invalid_request", 90023, ""}},
		{"90023 secret and assertion together", func(w *wireEnv) reply {
			f := ccgAssertion(w.assertion(assertionOpts{}))
			f.Set("client_secret", secretC)
			return w.post(tokenPath("contoso.com"), f)
		}, want{400, "invalid_request", 90023, ""}},
		{"7000222 expired secret", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", appOnly, "client_secret", "old-secret")
		}, want{401, "invalid_client", 7000222, ""}},
		{"7000222 secret expired through the admin API", func(w *wireEnv) reply {
			if err := w.e.UpdateApp(AppUpdate{ClientID: appC, ExpireSecrets: true}); err != nil {
				t.Fatal(err)
			}
			return ccg(w, "contoso.com", "scope", appOnly, "client_secret", secretC)
		}, want{401, "invalid_client", 7000222, ""}},
		{"700016 unknown client id", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "client_credentials", "client_id", "00000000-0000-4000-8000-00000000dead", "scope", appOnly, "client_secret", "x"))
		}, want{400, "unauthorized_client", 700016, ""}},
		{"700016 single-tenant app in another tenant", func(w *wireEnv) reply {
			return ccg(w, "fabrikam.com", "scope", appOnly, "client_secret", secretC)
		}, want{400, "unauthorized_client", 700016, ""}},
		{"700016 app of another cloud", func(w *wireEnv) reply {
			return w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appG, "scope", "User.Read"))
		}, want{400, "unauthorized_client", 700016, ""}},
		// Client assertions.
		{"700027 unknown certificate", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{rawThumb: "hOBcHZi846VCHSJbFAs26Go9VTQ", key: key2})))
		}, want{401, "invalid_client", 700027, ""}},
		{"700027 bad signature", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{key: key2})))
		}, want{401, "invalid_client", 700027, ""}},
		{"700027 no thumbprint at all", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{thumb: "none"})))
		}, want{401, "invalid_client", 700027, ""}},
		{"700024 expired assertion", func(w *wireEnv) reply {
			now := w.clock.Now()
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{nbf: now.Add(-20 * time.Minute), exp: now.Add(-10 * time.Minute)})))
		}, want{400, "invalid_client", 700024, ""}},
		{"700024 assertion from the future", func(w *wireEnv) reply {
			now := w.clock.Now()
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{nbf: now.Add(time.Hour), exp: now.Add(2 * time.Hour)})))
		}, want{400, "invalid_client", 700024, ""}},
		{"50048 sub differs from iss", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{sub: "someone-else"})))
		}, want{400, "invalid_client", 50048, ""}},
		{"700021 iss is not the client id", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{iss: appP})))
		}, want{400, "invalid_client", 700021, ""}},
		{"90014 assertion without jti", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{omit: "jti"})))
		}, want{400, "invalid_request", 90014, ""}},
		{"90014 assertion without iss", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{omit: "iss"})))
		}, want{400, "invalid_request", 90014, ""}},
		{"700023 audience is another endpoint", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{aud: "https://login.microsoftonline.com/fabrikam.com/oauth2/v2.0/token"})))
		}, want{400, "invalid_client", 700023, ""}},
		{"7000274 replayed jti", func(w *wireEnv) reply {
			a := w.assertion(assertionOpts{jti: "same"})
			if r := w.post(tokenPath("contoso.com"), ccgAssertion(a)); r.status != 200 {
				t.Fatalf("first use: %s", r.raw)
			}
			return w.post(tokenPath("contoso.com"), ccgAssertion(w.assertion(assertionOpts{jti: "same"})))
		}, want{400, "invalid_client", 7000274, ""}},
		{"50027 assertion is not a JWT", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), ccgAssertion("not.a-jwt"))
		}, want{400, "invalid_client", 50027, ""}},
		{"50027 HS256 assertion", func(w *wireEnv) reply {
			sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
			obj, _ := sig.Sign([]byte(`{"iss":"x"}`))
			s, _ := obj.CompactSerialize()
			return w.post(tokenPath("contoso.com"), ccgAssertion(s))
		}, want{400, "invalid_client", 50027, ""}},
		{"90023 wrong assertion type", func(w *wireEnv) reply {
			f := ccgAssertion(w.assertion(assertionOpts{}))
			f.Set("client_assertion_type", "urn:other")
			return w.post(tokenPath("contoso.com"), f)
		}, want{400, "invalid_request", 90023, ""}},
		// Tenants and audiences.
		{"90002 unknown tenant", func(w *wireEnv) reply {
			return ccg(w, "nosuch.example", "scope", appOnly, "client_secret", secretC)
		}, want{400, "invalid_request", 90002, ""}},
		{"90002 unknown tenant GUID", func(w *wireEnv) reply {
			return ccg(w, "44444444-4444-4444-8444-444444444444", "scope", appOnly, "client_secret", secretC)
		}, want{400, "invalid_request", 90002, ""}},
		{"90038 tenant of another cloud", func(w *wireEnv) reply {
			return ccg(w, tGov, "scope", appOnly, "client_secret", secretC)
		}, want{400, "invalid_request", 90038, ""}},
		{"50194 single-tenant app on common", func(w *wireEnv) reply {
			return w.post("/common/oauth2/v2.0/devicecode", form("client_id", appS, "scope", "User.Read"))
		}, want{400, "invalid_request", 50194, ""}},
		{"9002332 work-only app on consumers", func(w *wireEnv) reply {
			return w.post("/consumers/oauth2/v2.0/devicecode", form("client_id", appP, "scope", "User.Read"))
		}, want{400, "invalid_request", 9002332, ""}},
		{"9002346 personal-only app on a tenant", func(w *wireEnv) reply {
			return w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appM, "scope", "User.Read"))
		}, want{400, "invalid_request", 9002346, ""}},
		{"50059 client credentials on organizations", func(w *wireEnv) reply {
			return w.post(tokenPath("organizations"), form("grant_type", "client_credentials", "client_id", appP, "scope", appOnly, "client_secret", "x"))
		}, want{400, "invalid_request", 50059, ""}},
		// Scopes.
		{"70011 unknown permission", func(w *wireEnv) reply {
			return w.ropc("https://outlook.office.com/Nope.Nope")
		}, want{400, "invalid_scope", 70011, ""}},
		{"70011 .default mixed with dynamic scopes", func(w *wireEnv) reply {
			return w.ropc("https://graph.microsoft.com/.default Mail.Send")
		}, want{400, "invalid_scope", 70011, ""}},
		{"70011 client credentials with a dynamic scope", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", "https://graph.microsoft.com/Mail.Send", "client_secret", secretC)
		}, want{400, "invalid_scope", 70011, ""}},
		{"700022 client credentials with two resources", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "scope", appOnly+" https://graph.microsoft.com/.default", "client_secret", secretC)
		}, want{400, "invalid_scope", 700022, ""}},
		{"90014 client credentials without scope", func(w *wireEnv) reply {
			return ccg(w, "contoso.com", "client_secret", secretC)
		}, want{400, "invalid_request", 90014, ""}},
		{"500011 resource of another cloud", func(w *wireEnv) reply {
			return w.ropc("https://graph.microsoft.us/User.Read")
		}, want{400, "invalid_resource", 500011, ""}},
		{"65001 no consent for the scope", func(w *wireEnv) reply {
			return w.ropc("https://graph.microsoft.com/Mail.Read")
		}, want{400, "invalid_grant", 65001, "consent_required"}},
		{"65001 refresh for an unconsented resource scope", func(w *wireEnv) reply {
			return refresh(w, rt(w), "scope", "https://graph.microsoft.com/Mail.ReadWrite")
		}, want{400, "invalid_grant", 65001, "consent_required"}},
		// Users (ROPC).
		{"50126 bad password", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP, "username", "alice@contoso.com", "password", "bad", "scope", imapScope))
		}, want{400, "invalid_grant", 50126, ""}},
		{"50034 unknown user", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP, "username", "zed@contoso.com", "password", "x", "scope", imapScope))
		}, want{400, "invalid_grant", 50034, ""}},
		{"50076 MFA required", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP, "username", "bob@contoso.com", "password", "bob-pw", "scope", imapScope))
		}, want{400, "invalid_grant", 50076, "basic_action"}},
		{"53003 blocked by conditional access", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP, "username", "carol@contoso.com", "password", "carol-pw", "scope", imapScope))
		}, want{400, "invalid_grant", 53003, "message_only"}},
		{"50057 disabled user", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "password", "client_id", appP, "username", "dave@contoso.com", "password", "dave-pw", "scope", imapScope))
		}, want{400, "invalid_grant", 50057, ""}},
		{"9001023 ROPC on common", func(w *wireEnv) reply {
			return w.post(tokenPath("common"), form("grant_type", "password", "client_id", appP, "username", "alice@contoso.com", "password", "alice-pw", "scope", imapScope))
		}, want{400, "invalid_request", 9001023, ""}},
		// Authorization codes.
		{"9002313 garbled code", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			return redeem(w, c[:len(c)-5])
		}, want{400, "invalid_grant", 9002313, ""}},
		{"54005 code redeemed twice", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			if r := redeem(w, c); r.status != 200 {
				t.Fatalf("first redemption: %s", r.raw)
			}
			return redeem(w, c)
		}, want{400, "invalid_grant", 54005, ""}},
		{"70008 code expired", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			w.clock.Advance(11 * time.Minute)
			return redeem(w, c)
		}, want{400, "invalid_grant", 70008, ""}},
		{"501481 PKCE S256 mismatch", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{CodeChallenge: s256, CodeChallengeMethod: "S256"})
			return redeem(w, c, "code_verifier", strings.Repeat("a", 43))
		}, want{400, "invalid_grant", 501481, ""}},
		{"501481 PKCE verifier missing", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{CodeChallenge: s256, CodeChallengeMethod: "S256"})
			return redeem(w, c)
		}, want{400, "invalid_grant", 501481, ""}},
		{"501481 PKCE plain mismatch", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{CodeChallenge: verifier})
			return redeem(w, c, "code_verifier", verifier+"x")
		}, want{400, "invalid_grant", 501481, ""}},
		{"500112 redirect_uri differs from the authorize request", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			return w.post(tokenPath("organizations"), form("grant_type", "authorization_code", "client_id", appP, "code", c, "redirect_uri", "http://localhost:6000"))
		}, want{400, "invalid_grant", 500112, ""}},
		{"700005 code redeemed at another tenant", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			return w.post(tokenPath("fabrikam.com"), form("grant_type", "authorization_code", "client_id", appP, "code", c, "redirect_uri", "http://localhost:5000"))
		}, want{400, "invalid_grant", 700005, ""}},
		{"28000 code redemption for two resources", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			return redeem(w, c, "scope", imapScope+" https://graph.microsoft.com/Mail.Send")
		}, want{400, "invalid_scope", 28000, ""}},
		{"7000218 web redirect code without secret", func(w *wireEnv) reply {
			w.e.mu.Lock()
			a := w.e.model.app(appC)
			w.e.mu.Unlock()
			c := code(w, AuthCodeRequest{App: a, RedirectURI: "https://app.example/cb", Platform: PlatformWeb})
			return w.post(tokenPath("contoso.com"), form("grant_type", "authorization_code", "client_id", appC, "code", c, "redirect_uri", "https://app.example/cb"))
		}, want{400, "invalid_client", 7000218, ""}},
		{"9002327 spa code redeemed without Origin", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{RedirectURI: "https://spa.example/cb", Platform: PlatformSPA})
			return w.post(tokenPath("organizations"), form("grant_type", "authorization_code", "client_id", appP, "code", c, "redirect_uri", "https://spa.example/cb"))
		}, want{400, "invalid_request", 9002327, ""}},
		{"9002326 native code redeemed cross-origin", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{})
			return w.post(tokenPath("organizations"), form("grant_type", "authorization_code", "client_id", appP, "code", c, "redirect_uri", "http://localhost:5000"), "Origin", "https://evil.example")
		}, want{400, "invalid_request", 9002326, ""}},
		// Refresh tokens.
		{"9002313 garbled refresh token", func(w *wireEnv) reply {
			return refresh(w, "1.ARgarbage")
		}, want{400, "invalid_grant", 9002313, ""}},
		{"700082 refresh token inactive for 90 days", func(w *wireEnv) reply {
			tok := rt(w)
			w.clock.Advance(91 * 24 * time.Hour)
			return refresh(w, tok)
		}, want{400, "invalid_grant", 700082, ""}},
		{"700082 refresh token expired through the admin API", func(w *wireEnv) reply {
			tok := rt(w)
			if err := w.e.ExpireToken(tok); err != nil {
				t.Fatal(err)
			}
			return refresh(w, tok)
		}, want{400, "invalid_grant", 700082, ""}},
		{"50173 refresh token revoked", func(w *wireEnv) reply {
			tok := rt(w)
			if err := w.e.RevokeToken(tok); err != nil {
				t.Fatal(err)
			}
			return refresh(w, tok)
		}, want{400, "invalid_grant", 50173, ""}},
		{"50173 sessions revoked (password change)", func(w *wireEnv) reply {
			tok := rt(w)
			pw := "new-pw"
			if err := w.e.UpdateUser(UserUpdate{User: "alice@contoso.com", Password: &pw}); err != nil {
				t.Fatal(err)
			}
			return refresh(w, tok)
		}, want{400, "invalid_grant", 50173, ""}},
		{"700084 SPA refresh token after 24 hours", func(w *wireEnv) reply {
			c := code(w, AuthCodeRequest{RedirectURI: "https://spa.example/cb", Platform: PlatformSPA})
			r := w.post(tokenPath("organizations"), form("grant_type", "authorization_code", "client_id", appP, "code", c, "redirect_uri", "https://spa.example/cb"), "Origin", "https://spa.example")
			if r.status != 200 {
				t.Fatalf("spa redemption: %s", r.raw)
			}
			w.clock.Advance(25 * time.Hour)
			return w.post(tokenPath("organizations"), form("grant_type", "refresh_token", "client_id", appP, "refresh_token", r.str("refresh_token")), "Origin", "https://spa.example")
		}, want{400, "invalid_grant", 700084, ""}},
		// Device flow.
		{"70016 authorization pending", func(w *wireEnv) reply {
			d, _ := deviceCode(w, appP)
			return poll(w, appP, d)
		}, want{400, "authorization_pending", 70016, ""}},
		{"authorization_declined", func(w *wireEnv) reply {
			d, u := deviceCode(w, appP)
			if err := w.e.DenyDeviceCodeAs(u); err != nil {
				t.Fatal(err)
			}
			return poll(w, appP, d)
		}, want{400, "authorization_declined", 70020, ""}},
		{"expired_token", func(w *wireEnv) reply {
			d, _ := deviceCode(w, appP)
			w.clock.Advance(901 * time.Second)
			return poll(w, appP, d)
		}, want{400, "expired_token", 70019, ""}},
		{"bad_verification_code", func(w *wireEnv) reply {
			return poll(w, appP, "DAQABAAEAAAnothing")
		}, want{400, "bad_verification_code", 70018, ""}},
		{"slow_down when switched on", func(w *wireEnv) reply {
			if err := w.e.UpdateSettings(func(s *Settings) { s.SlowDown = true }); err != nil {
				t.Fatal(err)
			}
			d, _ := deviceCode(w, appP)
			poll(w, appP, d)
			return poll(w, appP, d)
		}, want{400, "slow_down", 70021, ""}},
		{"900144 devicecode without scope", func(w *wireEnv) reply {
			return w.post("/contoso.com/oauth2/v2.0/devicecode", form("client_id", appP))
		}, want{400, "invalid_request", 900144, ""}},
		// Request shape.
		{"900144 missing grant_type", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("client_id", appP))
		}, want{400, "invalid_request", 900144, ""}},
		{"900144 missing client_id", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "client_credentials"))
		}, want{400, "invalid_request", 900144, ""}},
		{"900144 missing code", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "authorization_code", "client_id", appP))
		}, want{400, "invalid_request", 900144, ""}},
		{"70003 unsupported grant type", func(w *wireEnv) reply {
			return w.post(tokenPath("contoso.com"), form("grant_type", "implicit", "client_id", appP))
		}, want{400, "unsupported_grant_type", 70003, ""}},
		{"900561 GET on the token endpoint", func(w *wireEnv) reply {
			return w.get(tokenPath("contoso.com"))
		}, want{400, "invalid_request", 900561, ""}},
		{"900021 JSON body", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"), strings.NewReader(`{"grant_type":"password"}`))
			req.Header.Set("Content-Type", "application/json")
			return w.do(req)
		}, want{400, "invalid_request", 900021, ""}},
		{"90101 body over 1 MiB", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"), strings.NewReader("scope="+strings.Repeat("a", 2<<20)))
			req.Header.Set("Content-Type", formContentType)
			return w.do(req)
		}, want{413, "invalid_request", 90101, ""}},
		{"90101 devicecode body over 1 MiB", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+"/contoso.com/oauth2/v2.0/devicecode", strings.NewReader("client_id="+appP+"&scope="+strings.Repeat("a", 2<<20)))
			req.Header.Set("Content-Type", formContentType)
			return w.do(req)
		}, want{413, "invalid_request", 90101, ""}},
		{"900021 devicecode with a JSON body", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+"/contoso.com/oauth2/v2.0/devicecode", strings.NewReader(`{"client_id":"x"}`))
			req.Header.Set("Content-Type", "application/json")
			return w.do(req)
		}, want{400, "invalid_request", 900021, ""}},
		{"9002313 malformed form encoding", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"), strings.NewReader("grant_type=%zz"))
			req.Header.Set("Content-Type", formContentType)
			return w.do(req)
		}, want{400, "invalid_request", 9002313, ""}},
		{"90100 repeated parameter", func(w *wireEnv) reply {
			req, _ := http.NewRequest("POST", w.srv.URL+tokenPath("contoso.com"), strings.NewReader("grant_type=password&grant_type=client_credentials"))
			req.Header.Set("Content-Type", formContentType)
			return w.do(req)
		}, want{400, "invalid_request", 90100, ""}},
		// Throttling.
		{"429 throttling with Retry-After", func(w *wireEnv) reply {
			if err := w.e.UpdateSettings(func(s *Settings) { s.Throttle = true; s.RetryAfter = 17 }); err != nil {
				t.Fatal(err)
			}
			r := ccg(w, "contoso.com", "scope", appOnly, "client_secret", secretC)
			if got := r.header.Get("Retry-After"); got != "17" {
				t.Errorf("Retry-After = %q, want 17", got)
			}
			return r
		}, want{429, "temporarily_unavailable", 90055, ""}},
		{"50196 loop detected on user flows", func(w *wireEnv) reply {
			if err := w.e.UpdateSettings(func(s *Settings) { s.LoopDetection = true }); err != nil {
				t.Fatal(err)
			}
			return w.ropc(imapScope)
		}, want{400, "invalid_grant", 50196, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWireEnv(t)
			r := tc.run(w)
			got := want{r.status, r.str("error"), r.code(), r.str("suberror")}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v\nbody: %s", got, tc.want, r.raw)
			}
			checkEnvelope(t, r)
		})
	}
}

// checkEnvelope checks Microsoft's error envelope (reference §3.1).
func checkEnvelope(t *testing.T, r reply) {
	t.Helper()
	desc := r.str("error_description")
	trace, corr, ts := r.str("trace_id"), r.str("correlation_id"), r.str("timestamp")
	if !isGUID(trace) || !isGUID(corr) {
		t.Errorf("trace_id %q / correlation_id %q are not GUIDs", trace, corr)
	}
	if _, err := time.Parse(msTimestamp, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	wantTail := "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + ts
	if !strings.HasSuffix(desc, wantTail) {
		t.Errorf("error_description %q does not end with the trace lines", desc)
	}
	if c := r.code(); c != 0 {
		if !strings.HasPrefix(desc, "AADSTS") {
			t.Errorf("error_description %q does not start with AADSTS", desc)
		}
		if !strings.HasSuffix(r.str("error_uri"), "/error?code="+strings.TrimPrefix(strings.SplitN(desc, ":", 2)[0], "AADSTS")) {
			t.Errorf("error_uri %q", r.str("error_uri"))
		}
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}
