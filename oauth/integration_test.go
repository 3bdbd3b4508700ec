package oauth_test

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mailoauth/mailoauth/internal/testenv/oidcprovider"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
)

// These tests run the flows against oidc-provider, a certified OpenID
// provider, started on 127.0.0.1 (see internal/testenv/oidcprovider).

func startOIDC(t *testing.T) (*oidcprovider.Server, *provider.Provider) {
	t.Helper()
	srv := oidcprovider.Start(t)
	p, err := provider.Discover(t.Context(), srv.HTTP, srv.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return srv, p
}

func TestIntegrationOIDCProvider(t *testing.T) {
	srv, p := startOIDC(t)
	ctx := t.Context()

	t.Run("discovery", func(t *testing.T) {
		if p.Kind != provider.KindOIDC || p.Endpoints.DeviceAuthURL == "" || p.Endpoints.IntrospectionURL == "" ||
			!p.Endpoints.SupportsAuthMethod("private_key_jwt") {
			t.Errorf("provider = %+v", p.Endpoints)
		}
	})

	t.Run("device approve then refresh with rotation", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.DeviceClient}
		d, err := c.DeviceAuthorize(ctx, []string{"openid", "offline_access", "mail"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(d.VerificationURI, srv.Issuer+"/device") || d.UserCode == "" {
			t.Fatalf("device auth = %v", d)
		}
		// oidc-provider names no interval; poll fast so pending rounds
		// happen while the user is still on the page.
		d.Interval = 50 * time.Millisecond
		type res struct {
			tok *oauth.Token
			err error
		}
		polled := make(chan res, 1)
		go func() {
			tok, err := c.DevicePoll(ctx, d)
			polled <- res{tok, err}
		}()
		b := oidcprovider.NewBrowser("alice@example.test")
		page, err := b.ApproveDevice(ctx, srv.Issuer, d.UserCode)
		if err != nil {
			t.Fatal(err)
		}
		if page.Status != 200 || !strings.Contains(page.Body, "Sign-in Success") {
			t.Errorf("device page after approval: %d %.400s", page.Status, page.Body)
		}
		r := <-polled
		if r.err != nil {
			t.Fatal(r.err)
		}
		tok := r.tok
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.IDToken == "" || tok.Expiry.Before(time.Now()) {
			t.Fatalf("device token = %v (refresh %t, id %t)", tok, tok.RefreshToken != "", tok.IDToken != "")
		}
		assertIntrospection(t, srv, tok.AccessToken, "alice@example.test")

		// Refresh rotates the refresh token; the new one works, the
		// spent one is refused as a re-login case.
		rt1 := tok.RefreshToken
		tok2, err := c.Refresh(ctx, rt1, []string{"openid", "offline_access", "mail"})
		if err != nil {
			t.Fatal(err)
		}
		if tok2.RefreshToken == "" || tok2.RefreshToken == rt1 || tok2.AccessToken == tok.AccessToken {
			t.Fatalf("refresh did not rotate: %v", tok2)
		}
		if _, err := c.Refresh(ctx, tok2.RefreshToken, nil); err != nil {
			t.Fatalf("rotated refresh token: %v", err)
		}
		_, err = c.Refresh(ctx, rt1, nil)
		if !errors.Is(err, oauth.ErrReloginRequired) {
			t.Fatalf("spent refresh token: err = %v, want ErrReloginRequired", err)
		}
		if strings.Contains(err.Error(), rt1) {
			t.Errorf("error leaks the refresh token")
		}
	})

	t.Run("device deny", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.DeviceClient}
		d, err := c.DeviceAuthorize(ctx, []string{"openid"})
		if err != nil {
			t.Fatal(err)
		}
		d.Interval = 50 * time.Millisecond
		if _, err := oidcprovider.NewBrowser("bob").DenyDevice(ctx, srv.Issuer, d.UserCode); err != nil {
			t.Fatal(err)
		}
		_, err = c.DevicePoll(ctx, d)
		var oe *oauth.Error
		if !errors.Is(err, oauth.ErrAccessDenied) || !errors.As(err, &oe) || oe.Code != "access_denied" {
			t.Fatalf("err = %v, want access_denied", err)
		}
	})

	t.Run("auth code with PKCE on a loopback redirect", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.NativeClient}
		b := oidcprovider.NewBrowser("carol@example.test")
		var mu sync.Mutex
		var page *oidcprovider.Page
		var signErr error
		done := make(chan struct{})
		tok, err := c.Login(ctx, oauth.LoginOptions{
			RedirectURI: oidcprovider.NativeRedirect, // no port: a free one, which oidc-provider accepts for native apps
			Scopes:      []string{"openid", "offline_access", "mail"},
			Interaction: oauth.Interaction{
				Browser: oauth.BrowserFunc(func(u string) error {
					go func() {
						defer close(done)
						p, err := b.SignIn(ctx, u)
						mu.Lock()
						page, signErr = p, err
						mu.Unlock()
					}()
					return nil
				}),
				Timeout: 30 * time.Second,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		<-done
		mu.Lock()
		defer mu.Unlock()
		if signErr != nil {
			t.Fatal(signErr)
		}
		if page.URL.Host == strings.TrimPrefix(srv.Issuer, "http://") || !strings.Contains(page.Body, "Signed in") {
			t.Errorf("browser ended at %s: %.300s", page.URL, page.Body)
		}
		if page.URL.Query().Get("iss") != srv.Issuer {
			t.Errorf("redirect lacks RFC 9207 iss: %s", page.URL)
		}
		if tok.RefreshToken == "" || tok.IDToken == "" {
			t.Errorf("token lacks refresh or id token: %v", tok)
		}
		assertIntrospection(t, srv, tok.AccessToken, "carol@example.test")
		if _, err := c.Refresh(ctx, tok.RefreshToken, []string{"mail"}); err != nil {
			t.Errorf("refresh: %v", err)
		}
	})

	t.Run("auth code denied at consent", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.NativeClient}
		b := oidcprovider.NewBrowser("dave")
		_, err := c.Login(ctx, oauth.LoginOptions{
			RedirectURI: oidcprovider.NativeRedirect, Scopes: []string{"openid"},
			Interaction: oauth.Interaction{Timeout: 30 * time.Second, Browser: oauth.BrowserFunc(func(u string) error {
				go func() {
					// Sign in, then abort at the consent page.
					p, err := b.SignInAndAbort(ctx, u)
					if err == nil && !strings.Contains(p.Body, "Sign-in failed") {
						t.Errorf("failure page = %.300s", p.Body)
					}
				}()
				return nil
			})},
		})
		if !errors.Is(err, oauth.ErrAccessDenied) {
			t.Fatalf("err = %v, want access denied", err)
		}
	})

	// A confidential web app: AuthCodeURL and Exchange, no listener; the
	// redirect's URL is read back as a pasted one would be.
	for _, wa := range []struct {
		name string
		id   string
		auth func() oauth.ClientAuth
	}{
		{"web app with client_secret_basic", oidcprovider.BasicClient, func() oauth.ClientAuth { return oauth.ClientSecret{Secret: oidcprovider.BasicSecret} }},
		{"web app with private_key_jwt", oidcprovider.PS256Client, func() oauth.ClientAuth {
			return &oauth.Certificate{Key: srv.ClientKey, Chain: []*x509.Certificate{srv.ClientCert}}
		}},
	} {
		t.Run(wa.name, func(t *testing.T) {
			t.Parallel()
			c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: wa.id, Auth: wa.auth()}
			redirect := "http://127.0.0.1:9/callback" // nothing listens: the app gets the URL another way
			ar, err := c.AuthCodeURL(redirect, []string{"openid", "offline_access", "mail"}, oauth.AuthOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b := oidcprovider.NewBrowser("frank@example.test")
			b.StopAt = redirect
			page, err := b.SignIn(ctx, ar.URL)
			if err != nil {
				t.Fatal(err)
			}
			code, err := ar.ParseRedirect(page.URL.String())
			if err != nil {
				t.Fatalf("redirect %s: %v", page.URL, err)
			}
			tok, err := c.Exchange(ctx, ar, code)
			if err != nil {
				t.Fatal(err)
			}
			if tok.RefreshToken == "" {
				t.Errorf("no refresh token: %v", tok)
			}
			// A code works once.
			_, err = c.Exchange(ctx, ar, code)
			if !errors.Is(err, oauth.ErrReloginRequired) || strings.Contains(err.Error(), code) {
				t.Errorf("second redemption: err = %v", err)
			}
			// A redirect from another issuer is refused (RFC 9207).
			forged := *page.URL
			q := forged.Query()
			q.Set("iss", "http://127.0.0.1:1")
			forged.RawQuery = q.Encode()
			if _, err := ar.ParseRedirect(forged.String()); err == nil || !strings.Contains(err.Error(), "mix-up") {
				t.Errorf("forged iss: err = %v", err)
			}
		})
	}

	clientCreds := []struct {
		name string
		id   string
		auth oauth.ClientAuth
		alg  string
	}{
		{"client_secret_basic", oidcprovider.BasicClient, oauth.ClientSecret{Secret: oidcprovider.BasicSecret}, ""},
		{"client_secret_post", oidcprovider.PostClient, oauth.ClientSecret{Secret: oidcprovider.PostSecret, Style: oauth.SecretInBody}, ""},
		{"private_key_jwt PS256 from metadata", oidcprovider.PS256Client, nil, "PS256"},
		{"private_key_jwt RS256", oidcprovider.RS256Client, nil, "RS256"},
	}
	for _, cc := range clientCreds {
		t.Run("client credentials "+cc.name, func(t *testing.T) {
			t.Parallel()
			auth := cc.auth
			if auth == nil {
				cert := &oauth.Certificate{Key: srv.ClientKey, Chain: []*x509.Certificate{srv.ClientCert}, SendX5C: true}
				if cc.alg == "RS256" {
					cert.Alg = jose.RS256
				}
				auth = cert
			}
			c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: cc.id, Auth: auth}
			tok, err := c.ClientCredentials(ctx, []string{"mail"})
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.RefreshToken != "" {
				t.Errorf("token = %v", tok)
			}
			assertIntrospection(t, srv, tok.AccessToken, "")
			// A second request signs a fresh assertion (oidc-provider
			// rejects a replayed jti).
			if _, err := c.ClientCredentials(ctx, []string{"mail"}); err != nil {
				t.Errorf("second request: %v", err)
			}
		})
	}

	t.Run("wrong secret", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.BasicClient, Auth: oauth.ClientSecret{Secret: "wrong-secret-value"}}
		_, err := c.ClientCredentials(ctx, []string{"mail"})
		if !errors.Is(err, oauth.ErrInvalidClient) || strings.Contains(err.Error(), "wrong-secret-value") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("JWT access token for the mail-jwt resource", func(t *testing.T) {
		t.Parallel()
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.BasicClient,
			Auth: oauth.ClientSecret{Secret: oidcprovider.BasicSecret}, TokenParams: url.Values{"resource": {oidcprovider.MailJWTResource}}}
		tok, err := c.ClientCredentials(ctx, []string{"imap"})
		if err != nil {
			t.Fatal(err)
		}
		var jwks jose.JSONWebKeySet
		resp, err := srv.HTTP.Get(srv.JWKSURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&jwks)
		at, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("access token is not a JWT: %v", err)
		}
		var claims jwt.Claims
		if err := at.Claims(jwks, &claims); err != nil {
			t.Fatal(err)
		}
		if err := claims.Validate(jwt.Expected{Issuer: srv.Issuer, AnyAudience: jwt.Audience{oidcprovider.MailJWTResource}}); err != nil {
			t.Errorf("claims: %v (%+v)", err, claims)
		}
	})
}

// assertIntrospection checks the token the way a mail server (Dovecot)
// would: RFC 7662 introspection with the introspection client's Basic
// credentials.
func assertIntrospection(t *testing.T, srv *oidcprovider.Server, token, wantSub string) {
	t.Helper()
	u, _ := url.Parse(srv.IntrospectionURL())
	user := u.User
	u.User = nil
	req, _ := http.NewRequest("POST", u.String(), strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pw, _ := user.Password()
	req.SetBasicAuth(user.Username(), pw)
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ir struct {
		Active bool   `json:"active"`
		Sub    string `json:"sub"`
		Scope  string `json:"scope"`
		Aud    any    `json:"aud"`
	}
	json.NewDecoder(resp.Body).Decode(&ir)
	if !ir.Active || ir.Sub != wantSub || !strings.Contains(ir.Scope, "mail") {
		t.Errorf("introspection = %+v, want active, sub %q, scope with mail", ir, wantSub)
	}
}

// TestIntegrationChromiumLoopback signs in once in a real headless
// Chromium: the browser goes through oidc-provider's login and consent
// pages, is redirected to our loopback listener, and shows its success page.
func TestIntegrationChromiumLoopback(t *testing.T) {
	srv, p := startOIDC(t)
	ctx := t.Context()
	c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.NativeClient}
	shot := filepath.Join(t.TempDir(), "success.png")
	if dir := os.Getenv("MAILOAUTH_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "loopback-success.png")
	}
	type res struct {
		r   *oidcprovider.ChromiumResult
		err error
	}
	shown := make(chan res, 1)
	tok, err := c.Login(ctx, oauth.LoginOptions{
		RedirectURI: oidcprovider.NativeRedirect,
		Scopes:      []string{"openid", "offline_access", "mail"},
		Interaction: oauth.Interaction{
			Timeout: 90 * time.Second,
			Browser: oauth.BrowserFunc(func(u string) error {
				go func() {
					r, err := oidcprovider.ChromiumSignIn(ctx, u, "erin@example.test", shot)
					shown <- res{r, err}
				}()
				return nil
			}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := <-shown
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.r.Status != "Signed in" || !strings.Contains(r.r.Message, "You can close this window") || !strings.HasPrefix(r.r.URL, "http://127.0.0.1:") {
		t.Errorf("chromium ended on %s with %+v", r.r.URL, r.r)
	}
	if r.r.Title != "mailoauth: Signed in" {
		t.Errorf("title = %q", r.r.Title)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Errorf("token = %v", tok)
	}
	if _, err := os.Stat(shot); err != nil {
		t.Errorf("no screenshot: %v", err)
	}
}
