package emulator

import (
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAuthorizeCodeFlow walks the whole browser flow: authorize → sign-in
// page → consent page → redirect with code and state → code redeemed at the
// token endpoint with the PKCE verifier; then the session cookie skips the
// password, and prompt=login asks again.
func TestAuthorizeCodeFlow(t *testing.T) {
	w := newPagesEnv(t)
	b := newBrowser(w)

	p := b.get(authorizeURL("organizations", "login_hint", "frank@fabrikam.com"))
	if p.status != http.StatusOK || p.formName() != "signin" {
		t.Fatalf("first page: status %d form %q", p.status, p.formName())
	}
	if !strings.Contains(p.body, `value="frank@fabrikam.com"`) {
		t.Error("login_hint does not pre-fill the username")
	}
	if got := p.id("app-name"); got != "Public" {
		t.Errorf("sign-in page names app %q, want Public", got)
	}
	for _, id := range []string{"trace-id", "correlation-id", "timestamp"} {
		if p.id(id) == "" {
			t.Errorf("sign-in page has no %s", id)
		}
	}

	p = b.signIn(p, "frank@fabrikam.com", "frank-pw")
	if p.formName() != "consent" {
		t.Fatalf("after sign-in: want the consent page (Fabrikam never consented), got %d: %s", p.status, p.text())
	}
	if !strings.Contains(p.text(), pgIMAP) || !strings.Contains(p.text(), "offline_access") {
		t.Errorf("consent page does not list the requested permissions: %s", p.text())
	}
	p = b.submit(p, "action", "accept")
	q := wantRedirect(t, p, "http://localhost/")
	if q.Get("state") != "st-123" || q.Get("code") == "" {
		t.Fatalf("redirect params %v", q)
	}

	tok := w.post(tokPath("organizations"), kv("grant_type", "authorization_code", "client_id", pgPublic,
		"code", q.Get("code"), "redirect_uri", redirLocal, "code_verifier", pkceVerifier))
	if tok.status != http.StatusOK || tok.str("access_token") == "" || tok.str("refresh_token") == "" || tok.str("id_token") == "" {
		t.Fatalf("redeem: %d %s", tok.status, tok.raw)
	}
	if !strings.Contains(tok.str("scope"), "IMAP.AccessAsUser.All") {
		t.Errorf("token scope %q", tok.str("scope"))
	}
	at, ok := w.e.Lookup(tok.str("access_token"))
	if !ok || at.UPN != "frank@fabrikam.com" || at.TenantID != pgFabrikam {
		t.Errorf("token registry: %+v", at)
	}

	// The code is bound to the PKCE challenge: a second code with a wrong
	// verifier is refused.
	p = b.get(authorizeURL("organizations"))
	q = wantRedirect(t, p, "http://localhost/") // session + consent: straight back
	tok = w.post(tokPath("organizations"), kv("grant_type", "authorization_code", "client_id", pgPublic,
		"code", q.Get("code"), "redirect_uri", redirLocal, "code_verifier", strings.Repeat("x", 43)))
	if tok.code() != 501481 {
		t.Errorf("wrong verifier: %d %s", tok.status, tok.raw)
	}

	// prompt=login ignores the session.
	p = b.get(authorizeURL("organizations", "prompt", "login"))
	if p.formName() != "signin" {
		t.Fatalf("prompt=login: want the sign-in page, got %d %q", p.status, p.formName())
	}
	q = wantRedirect(t, b.signIn(p, "frank@fabrikam.com", "frank-pw"), "http://localhost/")
	if q.Get("code") == "" {
		t.Errorf("prompt=login: no code %v", q)
	}
}

// TestAuthorizePageErrors: before the redirect URI is trusted, errors are
// shown on Microsoft's error page, never redirected.
func TestAuthorizePageErrors(t *testing.T) {
	w := newPagesEnv(t)
	tests := []struct {
		name, path, want string
	}{
		{"unknown tenant", authorizeURL("nosuch.example"), "AADSTS90002"},
		{"missing client_id", authorizeURL("common", "client_id", ""), "AADSTS900144"},
		{"unknown client", authorizeURL("common", "client_id", "aaaaaaaa-0000-4000-8000-0000000000ff"), "AADSTS700016"},
		{"single tenant app on common", authorizeURL("common", "client_id", pgSingle), "AADSTS50194"},
		{"no redirect registered", authorizeURL("contoso.com", "client_id", pgSingle), "AADSTS500113"},
		{"redirect mismatch", authorizeURL("common", "redirect_uri", "http://evil.example/cb"), "AADSTS50011: The redirect URI 'http://evil.example/cb' specified in the request does not match the redirect URIs configured for the application '" + pgPublic + "'"},
		{"redirect path case", authorizeURL("common", "redirect_uri", "http://127.0.0.1/CB"), "AADSTS50011"},
		{"ipv6 loopback", authorizeURL("common", "redirect_uri", "http://[::1]/cb"), "AADSTS50011"},
		{"repeated client_id", authorizeURL("common") + "&client_id=" + pgPublic, "AADSTS90100"},
		{"huge query", authorizeURL("common", "state", strings.Repeat("s", maxQuery)), "AADSTS90101"},
		{"bad escape", "/common/oauth2/v2.0/authorize?client_id=%zz", "AADSTS90023"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBrowser(w).get(tt.path)
			wantErrorPage(t, p, tt.want)
		})
	}
}

// TestAuthorizeRedirectErrors: once the client and redirect URI are known,
// errors go back to the redirect URI with error, error_description
// (AADSTS…) and the state.
func TestAuthorizeRedirectErrors(t *testing.T) {
	w := newPagesEnv(t)
	tests := []struct {
		name    string
		path    string
		wantErr string
		want    string // error_description prefix
	}{
		{"no response_type", authorizeURL("common", "response_type", ""), "invalid_request", "AADSTS900144"},
		{"unknown response_type", authorizeURL("common", "response_type", "code foo"), "unsupported_response_type", "AADSTS70005"},
		{"id_token without nonce", authorizeURL("common", "response_type", "code id_token"), "invalid_request", "AADSTS90014: The required field 'nonce'"},
		{"id_token not enabled", authorizeURL("common", "response_type", "code id_token", "nonce", "n1"), "unsupported_response_type", "AADSTS700054"},
		{"token not enabled", authorizeURL("common", "response_type", "token"), "unsupported_response_type", "AADSTS70005"},
		{"no scope", authorizeURL("common", "scope", ""), "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'"},
		{"unknown scope", authorizeURL("common", "scope", "https://outlook.office.com/Nope.Read"), "invalid_scope", "AADSTS70011"},
		{"default mixed", authorizeURL("common", "scope", "https://outlook.office.com/.default Mail.Send"), "invalid_scope", "AADSTS70011"},
		{"unknown resource", authorizeURL("common", "scope", "https://nosuch.example/X.Read"), "invalid_resource", "AADSTS500011"},
		{"short challenge", authorizeURL("common", "code_challenge", "abc"), "invalid_request", "AADSTS501491"},
		{"empty challenge", authorizeURL("common") + "&code_challenge=", "invalid_request", "AADSTS90100"},
		{"bad challenge method", authorizeURL("common", "code_challenge_method", "S512"), "invalid_request", "AADSTS90100"},
		{"bad prompt", authorizeURL("common", "prompt", "always"), "invalid_request", "AADSTS90023"},
		{"bad response_mode", authorizeURL("common", "response_mode", "web_message"), "invalid_request", "AADSTS90100"},
		{"prompt none without session", authorizeURL("common", "prompt", "none"), "login_required", "AADSTS50058"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBrowser(w).get(tt.path)
			q := wantRedirect(t, p, "http://localhost/")
			if q.Get("error") != tt.wantErr || !strings.HasPrefix(q.Get("error_description"), tt.want) {
				t.Errorf("error=%q description=%q, want %q %q", q.Get("error"), q.Get("error_description"), tt.wantErr, tt.want)
			}
			if q.Get("state") != "st-123" {
				t.Errorf("state not echoed: %v", q)
			}
			if !strings.Contains(q.Get("error_description"), "Trace ID: ") {
				t.Errorf("description without trace lines: %q", q.Get("error_description"))
			}
			if q.Get("code") != "" {
				t.Error("an error redirect carries a code")
			}
		})
	}
}

// TestAuthorizeEmptyChallenge: code_challenge present but empty is 50147.
func TestAuthorizeEmptyChallenge(t *testing.T) {
	w := newPagesEnv(t)
	p := newBrowser(w).get(strings.Replace(authorizeURL("common"), "code_challenge="+pkceS256(pkceVerifier), "code_challenge=", 1))
	q := wantRedirect(t, p, "http://localhost/")
	if !strings.HasPrefix(q.Get("error_description"), "AADSTS50147") {
		t.Errorf("got %v", q)
	}
}

// signedIn returns a browser with alice signed in (Contoso consented to the
// public app, so no consent page).
func signedIn(t *testing.T, w *pagesEnv) *browser {
	t.Helper()
	b := newBrowser(w)
	q := wantRedirect(t, b.signIn(b.get(authorizeURL("contoso.com")), "alice@contoso.com", "alice-pw"), "http://localhost/")
	if q.Get("code") == "" {
		t.Fatalf("sign-in: %v", q)
	}
	return b
}

func TestAuthorizePrompt(t *testing.T) {
	w := newPagesEnv(t)
	t.Run("none with session", func(t *testing.T) {
		b := signedIn(t, w)
		q := wantRedirect(t, b.get(authorizeURL("contoso.com", "prompt", "none")), "http://localhost/")
		if q.Get("code") == "" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("none with session but no consent", func(t *testing.T) {
		b := signedIn(t, w)
		q := wantRedirect(t, b.get(authorizeURL("contoso.com", "prompt", "none", "scope", "Mail.ReadWrite")), "http://localhost/")
		if q.Get("error") != "consent_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65001") {
			t.Errorf("got %v", q)
		}
	})
	t.Run("none for a user now needing MFA", func(t *testing.T) {
		b := signedIn(t, w)
		if err := w.e.UpdateUser(UserUpdate{User: "alice@contoso.com", MFARequired: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.e.UpdateUser(UserUpdate{User: "alice@contoso.com", MFARequired: ptr(false)}) }()
		q := wantRedirect(t, b.get(authorizeURL("contoso.com", "prompt", "none")), "http://localhost/")
		if q.Get("error") != "interaction_required" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50076") {
			t.Errorf("got %v", q)
		}
	})
	t.Run("consent forces the consent page", func(t *testing.T) {
		b := signedIn(t, w)
		p := b.get(authorizeURL("contoso.com", "prompt", "consent"))
		if p.formName() != "consent" {
			t.Fatalf("got %d %q", p.status, p.formName())
		}
		q := wantRedirect(t, b.submit(p, "action", "accept"), "http://localhost/")
		if q.Get("code") == "" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("select_account", func(t *testing.T) {
		b := signedIn(t, w)
		p := b.get(authorizeURL("contoso.com", "prompt", "select_account"))
		if p.formName() != "pick" || !strings.Contains(p.text(), "alice@contoso.com") {
			t.Fatalf("got %d %q", p.status, p.formName())
		}
		if q := wantRedirect(t, b.submit(p, "action", "continue"), "http://localhost/"); q.Get("code") == "" {
			t.Errorf("continue: %v", q)
		}
		p = b.submit(b.get(authorizeURL("contoso.com", "prompt", "select_account")), "action", "other")
		if p.formName() != "signin" {
			t.Errorf("use another account: got %q", p.formName())
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestAuthorizeResponseModes(t *testing.T) {
	w := newPagesEnv(t)
	t.Run("form_post", func(t *testing.T) {
		b := newBrowser(w)
		// The state is echoed into the auto-posting form: it must be
		// escaped there, not break out of the attribute.
		state := `st"><script>x('&')</script>`
		p := b.signIn(b.get(authorizeURL("contoso.com", "response_mode", "form_post", "redirect_uri", redirCB, "state", state)), "alice@contoso.com", "alice-pw")
		if p.status != http.StatusOK || !strings.Contains(p.body, `action="http://127.0.0.1/cb"`) {
			t.Fatalf("form_post page: %d %s", p.status, p.body)
		}
		if strings.Contains(p.body, "<script>x(") {
			t.Errorf("state not escaped in the form_post page: %s", p.body)
		}
		v := url.Values{}
		for _, h := range hiddenInputs(p.body) {
			v.Set(h[0], h[1])
		}
		if v.Get("code") == "" || v.Get("state") != state {
			t.Errorf("form_post fields %v", v)
		}
	})
	t.Run("fragment", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com", "response_mode", "fragment")), "alice@contoso.com", "alice-pw")
		if p.loc == nil || p.loc.Fragment == "" || p.loc.RawQuery != "" {
			t.Fatalf("fragment: %v", p.loc)
		}
		if wantRedirect(t, p, "http://localhost/").Get("code") == "" {
			t.Error("no code in the fragment")
		}
	})
	t.Run("localhost port ignored", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com", "redirect_uri", "http://localhost:53123/")), "alice@contoso.com", "alice-pw")
		code := wantRedirect(t, p, "http://localhost:53123/").Get("code")
		tok := w.post(tokPath("contoso.com"), kv("grant_type", "authorization_code", "client_id", pgPublic,
			"code", code, "redirect_uri", "http://localhost:53123/", "code_verifier", pkceVerifier))
		if tok.status != http.StatusOK {
			t.Errorf("redeem: %s", tok.raw)
		}
	})
	t.Run("plain PKCE and POSTed authorize request", func(t *testing.T) {
		b := newBrowser(w)
		v, _ := url.ParseQuery(strings.SplitN(authorizeURL("contoso.com", "code_challenge", pkceVerifier, "code_challenge_method", ""), "?", 2)[1])
		p := b.signIn(b.post("/contoso.com/oauth2/v2.0/authorize", v), "alice@contoso.com", "alice-pw")
		code := wantRedirect(t, p, "http://localhost/").Get("code")
		tok := w.post(tokPath("contoso.com"), kv("grant_type", "authorization_code", "client_id", pgPublic,
			"code", code, "redirect_uri", redirLocal, "code_verifier", pkceVerifier))
		if tok.status != http.StatusOK {
			t.Errorf("redeem with plain verifier: %s", tok.raw)
		}
	})
	t.Run("web app and client_info", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com", "client_id", pgWeb, "redirect_uri", "https://app.example", "client_info", "1",
			"code_challenge", "", "code_challenge_method", "")), "alice@contoso.com", "alice-pw")
		q := wantRedirect(t, p, "https://app.example/")
		if q.Get("client_info") == "" {
			t.Errorf("no client_info: %v", q)
		}
		tok := w.post(tokPath("contoso.com"), kv("grant_type", "authorization_code", "client_id", pgWeb, "client_secret", "web-secret",
			"code", q.Get("code"), "redirect_uri", "https://app.example"))
		if tok.status != http.StatusOK {
			t.Errorf("redeem by the web app: %s", tok.raw)
		}
	})
}

func hiddenInputs(body string) [][2]string {
	var out [][2]string
	for _, m := range hiddenRe.FindAllStringSubmatch(strings.ReplaceAll(body, ` />`, `>`), -1) {
		out = append(out, [2]string{m[1], unescape(m[2])})
	}
	return out
}

func unescape(s string) string { return html.UnescapeString(s) }

func TestAuthorizeSignInOutcomes(t *testing.T) {
	w := newPagesEnv(t)
	t.Run("wrong password", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com")), "alice@contoso.com", "nope")
		if p.formName() != "signin" || !strings.Contains(p.id("inline-error"), "AADSTS50126") {
			t.Fatalf("got %q %q", p.formName(), p.id("inline-error"))
		}
		// The page can be retried.
		if q := wantRedirect(t, b.signIn(p, "alice@contoso.com", "alice-pw"), "http://localhost/"); q.Get("code") == "" {
			t.Errorf("retry: %v", q)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com")), "zed@contoso.com", "x")
		if !strings.Contains(p.id("inline-error"), "AADSTS50034") {
			t.Fatalf("got %q", p.id("inline-error"))
		}
	})
	t.Run("user of another tenant", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com")), "frank@fabrikam.com", "frank-pw")
		if !strings.Contains(p.id("inline-error"), "AADSTS50034") {
			t.Fatalf("got %q", p.id("inline-error"))
		}
	})
	t.Run("disabled", func(t *testing.T) {
		b := newBrowser(w)
		wantErrorPage(t, b.signIn(b.get(authorizeURL("contoso.com")), "dave@contoso.com", "dave-pw"), "AADSTS50057")
	})
	t.Run("conditional access", func(t *testing.T) {
		b := newBrowser(w)
		wantErrorPage(t, b.signIn(b.get(authorizeURL("contoso.com")), "carol@contoso.com", "carol-pw"), "AADSTS53003")
	})
	t.Run("mfa approve", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com")), "bob@contoso.com", "bob-pw")
		if p.formName() != "mfa" {
			t.Fatalf("want the MFA page, got %q: %s", p.formName(), p.text())
		}
		q := wantRedirect(t, b.submit(p, "action", "approve"), "http://localhost/")
		tok := w.post(tokPath("contoso.com"), kv("grant_type", "authorization_code", "client_id", pgPublic,
			"code", q.Get("code"), "redirect_uri", redirLocal, "code_verifier", pkceVerifier))
		if tok.status != http.StatusOK {
			t.Errorf("redeem after MFA: %s", tok.raw)
		}
		// The session remembers MFA: prompt=none works.
		if q := wantRedirect(t, b.get(authorizeURL("contoso.com", "prompt", "none")), "http://localhost/"); q.Get("code") == "" {
			t.Errorf("prompt=none after MFA: %v", q)
		}
	})
	t.Run("mfa deny", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("contoso.com")), "bob@contoso.com", "bob-pw")
		wantErrorPage(t, b.submit(p, "action", "deny"), "AADSTS500121")
	})
	t.Run("consent cancel", func(t *testing.T) {
		b := newBrowser(w)
		p := b.signIn(b.get(authorizeURL("fabrikam.com")), "frank@fabrikam.com", "frank-pw")
		q := wantRedirect(t, b.submit(p, "action", "cancel"), "http://localhost/")
		if q.Get("error") != "access_denied" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65004") || q.Get("state") != "st-123" {
			t.Errorf("got %v", q)
		}
	})
	t.Run("admin consent needed", func(t *testing.T) {
		if err := w.e.UpdateTenant(TenantUpdate{Tenant: pgFabrikam, UserConsentDisabled: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		b := newBrowser(w)
		wantErrorPage(t, b.signIn(b.get(authorizeURL("fabrikam.com")), "frank@fabrikam.com", "frank-pw"), "AADSTS90094")
	})
}

// TestAuthorizeForms: the page forms only work from the browser they were
// sent to, unaltered.
func TestAuthorizeForms(t *testing.T) {
	w := newPagesEnv(t)
	b := newBrowser(w)
	p := b.get(authorizeURL("contoso.com"))
	t.Run("other browser", func(t *testing.T) {
		wantErrorPage(t, newBrowser(w).signIn(p, "alice@contoso.com", "alice-pw"), "")
	})
	t.Run("tampered csrf", func(t *testing.T) {
		wantErrorPage(t, b.submit(p, "login", "alice@contoso.com", "passwd", "alice-pw", "csrf", "x"), "")
	})
	t.Run("tampered context", func(t *testing.T) {
		wantErrorPage(t, b.submit(p, "login", "alice@contoso.com", "passwd", "alice-pw", "ctx", "e30.AAAA"), "")
	})
	t.Run("expired form", func(t *testing.T) {
		w.clock.Advance(2 * flowLifetime)
		defer w.clock.Advance(-2 * flowLifetime)
		wantErrorPage(t, b.signIn(p, "alice@contoso.com", "alice-pw"), "")
	})
	t.Run("form of another tenant path", func(t *testing.T) {
		m := formRe.FindStringSubmatch(p.body)
		other := strings.Replace(p.body, m[1], "/fabrikam.com/oauth2/v2.0/authorize", 1)
		wantErrorPage(t, b.signIn(&page{body: other}, "alice@contoso.com", "alice-pw"), "")
	})
	t.Run("huge form", func(t *testing.T) {
		wantErrorPage(t, b.post("/contoso.com/oauth2/v2.0/authorize", url.Values{"ctx": {strings.Repeat("a", maxPageForm)}}), "AADSTS90101")
	})
	t.Run("still works", func(t *testing.T) {
		if q := wantRedirect(t, b.signIn(p, "alice@contoso.com", "alice-pw"), "http://localhost/"); q.Get("code") == "" {
			t.Errorf("got %v", q)
		}
	})
}

func TestAuthorizeV1Resource(t *testing.T) {
	w := newPagesEnv(t)
	b := newBrowser(w)
	v := url.Values{"client_id": {pgPublic}, "response_type": {"code"}, "redirect_uri": {redirLocal},
		"resource": {"https://outlook.office.com"}, "state": {"v1"}}
	q := wantRedirect(t, b.signIn(b.get("/contoso.com/oauth2/authorize?"+v.Encode()), "alice@contoso.com", "alice-pw"), "http://localhost/")
	if diff := cmp.Diff("v1", q.Get("state")); diff != "" || q.Get("code") == "" {
		t.Errorf("v1 authorize (-want +got):\n%s %v", diff, q)
	}
}

// TestAuthorizeLoginHintOtherAccount: a login_hint naming another account
// than the session's asks that account to sign in.
func TestAuthorizeLoginHintOtherAccount(t *testing.T) {
	w := newPagesEnv(t)
	b := signedIn(t, w)
	p := b.get(authorizeURL("contoso.com", "login_hint", "bob@contoso.com"))
	if p.formName() != "signin" || !strings.Contains(p.body, `value="bob@contoso.com"`) {
		t.Fatalf("got %q", p.formName())
	}
	if q := wantRedirect(t, b.get(authorizeURL("contoso.com", "login_hint", "ALICE@contoso.com")), "http://localhost/"); q.Get("code") == "" {
		t.Errorf("hint naming the session user: %v", q)
	}
	if q := wantRedirect(t, b.get(authorizeURL("contoso.com", "login_hint", "bob@contoso.com", "prompt", "none")), "http://localhost/"); q.Get("error") != "login_required" {
		t.Errorf("prompt=none with another account's hint: %v", q)
	}
}

// TestAuthorizeConsentForOrganization: an admin's "consent on behalf of
// your organization" spares the other users of the tenant the consent page.
func TestAuthorizeConsentForOrganization(t *testing.T) {
	w := newPagesEnv(t)
	b := newBrowser(w)
	p := b.signIn(b.get(authorizeURL("fabrikam.com")), "frank@fabrikam.com", "frank-pw")
	if p.formName() != "consent" || strings.Contains(p.body, `name="org"`) {
		t.Fatalf("a non-admin is offered organization consent")
	}
	adminUser(t, w, "fiona@fabrikam.com")
	b = newBrowser(w)
	p = b.signIn(b.get(authorizeURL("fabrikam.com")), "fiona@fabrikam.com", "fiona-pw")
	if !strings.Contains(p.body, `name="org"`) {
		t.Fatalf("an admin is not offered organization consent: %s", p.text())
	}
	wantRedirect(t, b.submit(p, "action", "accept", "org", "1"), "http://localhost/")
	b = newBrowser(w)
	q := wantRedirect(t, b.signIn(b.get(authorizeURL("fabrikam.com")), "frank@fabrikam.com", "frank-pw"), "http://localhost/")
	if q.Get("code") == "" {
		t.Errorf("frank after organization consent: %v", q)
	}
}

// TestSignInGo runs the admin sign-in from Go, without HTTP.
func TestSignInGo(t *testing.T) {
	w := newPagesEnv(t)
	res, err := w.e.SignIn(nil, "authorize", SignInRequest{Tenant: "contoso.com", Params: map[string]string{
		"client_id": pgPublic, "response_type": "code", "redirect_uri": redirLocal, "scope": pgIMAP, "state": "go"},
		Username: "alice@contoso.com", Password: "alice-pw"})
	if err != nil || res.Code == "" || res.State != "go" {
		t.Fatalf("SignIn: %+v %v", res, err)
	}
	if tok := w.redeem("contoso.com", res.Code, redirLocal, ""); tok.status != http.StatusOK {
		t.Errorf("redeem: %s", tok.raw)
	}
}

// TestAuthorizeSeveralResources: /authorize may ask for several resources at
// once; the consent page covers all, the code redeems for the first, and a
// refresh token then gets the second without another consent.
func TestAuthorizeSeveralResources(t *testing.T) {
	w := newPagesEnv(t)
	b := newBrowser(w)
	p := b.signIn(b.get(authorizeURL("fabrikam.com", "scope", pgIMAP+" Mail.Send offline_access")), "frank@fabrikam.com", "frank-pw")
	if !strings.Contains(p.text(), pgIMAP) || !strings.Contains(p.text(), "Mail.Send") {
		t.Fatalf("consent page: %s", p.text())
	}
	q := wantRedirect(t, b.submit(p, "action", "accept"), "http://localhost/")
	tok := w.redeem("fabrikam.com", q.Get("code"), redirLocal, pkceVerifier)
	if at, _ := w.e.Lookup(tok.str("access_token")); at.Resource != ExchangeAppID {
		t.Fatalf("first token is for %q: %s", at.Resource, tok.raw)
	}
	r := w.post(tokPath("fabrikam.com"), kv("grant_type", "refresh_token", "client_id", pgPublic,
		"refresh_token", tok.str("refresh_token"), "scope", "Mail.Send"))
	if at, _ := w.e.Lookup(r.str("access_token")); r.status != http.StatusOK || at.Resource != GraphAppID {
		t.Errorf("refresh for Graph: %s", r.raw)
	}
}

// TestAuthorizeOverTLS runs the pages on the HTTPS server, where the
// cookies are Secure.
func TestAuthorizeOverTLS(t *testing.T) {
	sc, err := LoadScenario("testdata/authorize.toml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(ServerOptions{Options: Options{Scenario: sc}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := srv.HTTPClient()
	defer client.CloseIdleConnections()
	jar, _ := cookiejar.New(nil)
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b := &browser{t: t, client: client, base: srv.URL}
	p := b.get(authorizeURL("contoso.com"))
	for _, c := range p.header.Values("Set-Cookie") {
		if !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") {
			t.Errorf("cookie without Secure/HttpOnly over TLS: %s", c)
		}
	}
	q := wantRedirect(t, b.signIn(p, "alice@contoso.com", "alice-pw"), "http://localhost/")
	if q.Get("code") == "" {
		t.Fatalf("got %v", q)
	}
	if p := b.get(authorizeURL("contoso.com", "prompt", "none")); p.query().Get("code") == "" {
		t.Errorf("the session cookie did not come back over TLS: %v", p.query())
	}
}
