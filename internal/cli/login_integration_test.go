package cli

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/testenv/oidcprovider"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
	"github.com/mailoauth/mailoauth/tokens"
)

// The CLI's login, token and logout against oidc-provider, a certified
// OpenID provider on 127.0.0.1 (internal/testenv/oidcprovider): the flows
// a standard server defines, with its sign-in pages driven over HTTP.

const oidcAccounts = `
store = "sqlite:{dir}/tokens.db"

[accounts.device]
provider = "oidc"
issuer = "{issuer}"
client_id = "mailoauth-device"
flow = "device"
scopes = ["openid", "offline_access", "mail"]

[accounts.native]
provider = "oidc"
issuer = "{issuer}"
client_id = "mailoauth-native"
flow = "authcode"
redirect_uri = "http://127.0.0.1/callback"
scopes = ["openid", "offline_access", "mail"]

[accounts.basic]
provider = "oidc"
issuer = "{issuer}"
client_id = "mailoauth-basic"
client_secret = "env:OIDC_BASIC_SECRET"
auth_method = "client_secret_basic"
flow = "client_credentials"
scopes = ["mail"]
email = "robot@example.test"

[accounts.post]
provider = "oidc"
issuer = "{issuer}"
client_id = "mailoauth-post"
client_secret = "env:OIDC_POST_SECRET"
auth_method = "client_secret_post"
flow = "client_credentials"
scopes = ["mail"]
email = "robot@example.test"

[accounts.jwt]
provider = "oidc"
issuer = "{issuer}"
client_id = "mailoauth-jwt-ps256"
certificate = "client.pem"
flow = "client_credentials"
scopes = ["mail"]
email = "robot@example.test"
`

func newOIDCEnv(t *testing.T) (*emuEnv, *oidcprovider.Server) {
	t.Helper()
	srv := oidcprovider.Start(t)
	e := &emuEnv{t: t, dir: t.TempDir()}
	e.writeStoreKey()
	der, err := x509.MarshalPKCS8PrivateKey(srv.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	e.write("client.pem", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.ClientCert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...))
	e.cfg = filepath.Join(e.dir, "config.toml")
	e.write("config.toml", []byte(strings.NewReplacer("{dir}", e.dir, "{issuer}", srv.Issuer).Replace(oidcAccounts)))
	t.Setenv("OIDC_BASIC_SECRET", oidcprovider.BasicSecret)
	t.Setenv("OIDC_POST_SECRET", oidcprovider.PostSecret)
	t.Setenv("MAILOAUTH_CONFIG", "")
	t.Setenv("SSH_CONNECTION", "")
	return e, srv
}

func TestIntegrationLoginOIDCProvider(t *testing.T) {
	e, srv := newOIDCEnv(t)
	ctx := context.Background()

	t.Run("device approve, token, refresh, logout revokes", func(t *testing.T) {
		e := e.with(t)
		var pageErr error
		var wg sync.WaitGroup
		r := e.exec(nil, deviceAct(func(code string) {
			wg.Add(1)
			defer wg.Done()
			_, pageErr = oidcprovider.NewBrowser("alice@example.test").ApproveDevice(ctx, srv.Issuer, code)
		}), "login", "device")
		wg.Wait()
		if pageErr != nil {
			t.Fatal(pageErr)
		}
		if r.code != 0 || !strings.Contains(r.err, "Logged in device as alice@example.test") {
			t.Fatalf("login: exit %d\n%s", r.code, r.err)
		}
		first := e.token("device")
		if again := e.token("device"); again != first {
			t.Errorf("second token differs: not cached")
		}
		rt1, err := tokens.LoadToken(ctx, e.store(), "device", tokens.KindRefresh)
		if err != nil {
			t.Fatal(err)
		}
		// Time passes: the stored token expires, token refreshes (and the
		// server rotates the refresh token, which is stored).
		e.expireLocally("device", "mail")
		second := e.token("device")
		if second == first {
			t.Fatal("expired token handed out")
		}
		rt2, err := tokens.LoadToken(ctx, e.store(), "device", tokens.KindRefresh)
		if err != nil {
			t.Fatal(err)
		}
		if rt2.RefreshToken == rt1.RefreshToken {
			t.Errorf("rotated refresh token not stored")
		}
		sasl := e.token("device", "--sasl", "oauthbearer")
		raw, _ := base64.StdEncoding.DecodeString(sasl)
		if want := "n,a=alice@example.test,\x01auth=Bearer " + second + "\x01\x01"; string(raw) != want {
			t.Errorf("oauthbearer = %q, want %q", raw, want)
		}

		var lo account.LogoutResult
		r = e.exec(nil, nil, "logout", "device", "--json")
		if err := json.Unmarshal([]byte(r.out), &lo); err != nil || r.code != 0 {
			t.Fatalf("logout: exit %d, %v\n%s%s", r.code, err, r.out, r.err)
		}
		if !lo.Forgot || !lo.Revoked {
			t.Errorf("logout = %+v, want forgot and revoked", lo)
		}
		p, err := provider.Discover(ctx, srv.HTTP, srv.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		c := &oauth.Client{HTTP: srv.HTTP, Provider: p, ClientID: oidcprovider.DeviceClient}
		if _, err := c.Refresh(ctx, rt2.RefreshToken, nil); !errors.Is(err, oauth.ErrReloginRequired) {
			t.Errorf("refresh with the revoked token: %v, want relogin required", err)
		}
	})

	t.Run("device deny", func(t *testing.T) {
		e := e.with(t)
		r := e.exec(nil, deviceAct(func(code string) {
			if _, err := oidcprovider.NewBrowser("bob").DenyDevice(ctx, srv.Issuer, code); err != nil {
				t.Error(err)
			}
		}), "login", "device")
		if r.code != ExitError || !strings.Contains(r.err, "access_denied") {
			t.Errorf("exit %d\n%s", r.code, r.err)
		}
	})

	t.Run("authcode with PKCE via paste", func(t *testing.T) {
		e := e.with(t)
		pr, pw := io.Pipe()
		defer pw.Close()
		watch := onceURL(func(raw string) {
			u, err := url.Parse(raw)
			if err != nil {
				t.Error(err)
				pw.Close()
				return
			}
			b := oidcprovider.NewBrowser("carol@example.test")
			// Stop at the listener, as a browser on another
			// machine would: its address is what gets pasted.
			b.StopAt = u.Query().Get("redirect_uri")
			page, err := b.SignIn(ctx, raw)
			if err != nil {
				t.Error(err)
				pw.Close()
				return
			}
			fmt.Fprintln(pw, page.URL.String())
		})
		r := e.exec(pr, watch, "login", "native", "--no-browser", "--paste")
		if r.code != 0 || !strings.Contains(r.err, "Logged in native as carol@example.test") {
			t.Fatalf("exit %d\n%s", r.code, r.err)
		}
		if !strings.Contains(r.err, "code_challenge_method=S256") {
			t.Errorf("no PKCE in the URL:\n%s", r.err)
		}
		e.token("native")
	})

	t.Run("authcode with PKCE through the loopback listener", func(t *testing.T) {
		e := e.with(t)
		page := make(chan *oidcprovider.Page, 1)
		watch := onceURL(func(u string) {
			// The browser follows every redirect, the last one to
			// mailoauth's listener on 127.0.0.1.
			p, err := oidcprovider.NewBrowser("erin@example.test").SignIn(ctx, u)
			if err != nil {
				t.Error(err)
			}
			page <- p
		})
		r := e.exec(nil, watch, "login", "native", "--no-browser")
		if r.code != 0 || !strings.Contains(r.err, "Logged in native as erin@example.test") {
			t.Fatalf("exit %d\n%s", r.code, r.err)
		}
		if p := <-page; p == nil || !strings.HasPrefix(p.URL.String(), "http://127.0.0.1:") || !strings.Contains(p.Body, "Signed in") {
			t.Errorf("the browser did not end on the listener's success page: %+v", p)
		}
		e.token("native")
	})

	for _, acct := range []string{"basic", "post", "jwt"} {
		t.Run("client credentials "+acct, func(t *testing.T) {
			e := e.with(t)
			r := e.exec(nil, nil, "login", acct, "--json")
			if r.code != 0 {
				t.Fatalf("login: exit %d\n%s%s", r.code, r.out, r.err)
			}
			if strings.Contains(r.out, "access_token") {
				t.Errorf("login --json shows a token")
			}
			if tok := e.token(acct); tok == "" {
				t.Error("no token")
			}
		})
	}
}
