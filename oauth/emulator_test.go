package oauth

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/emulator"
	"github.com/mailoauth/mailoauth/provider"
)

// timedTransport records when each token request (a device poll) left,
// measured from start on the bubble's clock.
type timedTransport struct {
	next  http.RoundTripper
	start time.Time
	mu    sync.Mutex
	polls []time.Duration
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/token") {
		t.mu.Lock()
		t.polls = append(t.polls, time.Since(t.start))
		t.mu.Unlock()
	}
	return t.next.RoundTrip(r)
}

// TestDeviceFlowEmulator runs the device flow against the Microsoft
// emulator (an independent implementation of the reference) inside a
// synctest bubble, so its 5 s intervals and 15 min expiry cost no real
// time: approval after pending rounds, slow_down adding 5 s to the
// interval, a declined sign-in and an expired code.
func TestDeviceFlowEmulator(t *testing.T) {
	tests := []struct {
		name     string
		slowDown bool
		interval time.Duration // the client's, overriding the server's 5 s
		act      func(e *emulator.Emulator, userCode string)
		wantAt   []time.Duration
		wantErr  error
		wantCode string
	}{
		{name: "approved after pending polls", act: func(e *emulator.Emulator, code string) {
			time.AfterFunc(12*time.Second, func() { e.ApproveDeviceCodeAs(code, "alice@contoso.com") })
		}, wantAt: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}},
		{name: "slow_down adds 5 s", slowDown: true, interval: 2 * time.Second, act: func(e *emulator.Emulator, code string) {
			time.AfterFunc(5*time.Second, func() { e.ApproveDeviceCodeAs(code, "alice@contoso.com") })
		}, wantAt: []time.Duration{2 * time.Second, 4 * time.Second /* slow_down */, 11 * time.Second}},
		{name: "declined", act: func(e *emulator.Emulator, code string) {
			time.AfterFunc(7*time.Second, func() { e.DenyDeviceCodeAs(code) })
		}, wantAt: []time.Duration{5 * time.Second, 10 * time.Second}, wantErr: ErrAccessDenied, wantCode: "authorization_declined"},
		{name: "expired", act: func(*emulator.Emulator, string) {}, wantErr: ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, err := emulator.New(emulator.Options{})
				if err != nil {
					t.Fatal(err)
				}
				e.UpdateSettings(func(s *emulator.Settings) { s.SlowDown = tt.slowDown })
				demo := e.Demo()
				p, err := provider.Microsoft(provider.MicrosoftOptions{Tenant: demo.TenantID})
				if err != nil {
					t.Fatal(err)
				}
				tr := &timedTransport{next: handlerTransport{e.Handler()}}
				c := &Client{HTTP: &http.Client{Transport: tr}, Provider: p, ClientID: demo.PublicClientID}
				d, err := c.DeviceAuthorize(t.Context(), []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"})
				if err != nil {
					t.Fatal(err)
				}
				if d.Interval != 5*time.Second || d.Expiry.Sub(time.Now()) != 900*time.Second {
					t.Errorf("device auth: interval %v, expires in %v; want the server's 5s and 900s", d.Interval, d.Expiry.Sub(time.Now()))
				}
				if tt.interval != 0 {
					d.Interval = tt.interval
				}
				tr.start = time.Now()
				tt.act(e, d.UserCode)
				tok, err := c.DevicePoll(t.Context(), d)
				if tt.wantErr != nil {
					var oe *Error
					if !errors.Is(err, tt.wantErr) || (tt.wantCode != "" && (!errors.As(err, &oe) || oe.Code != tt.wantCode)) {
						t.Fatalf("err = %v, want %v (%s)", err, tt.wantErr, tt.wantCode)
					}
					if strings.Contains(err.Error(), d.DeviceCode) {
						t.Error("the error shows the device code")
					}
				} else if err != nil {
					t.Fatal(err)
				} else if tok.AccessToken == "" || tok.RefreshToken == "" {
					t.Errorf("token = %v", tok)
				}
				if tt.wantAt != nil {
					if diff := cmp.Diff(tt.wantAt, tr.polls); diff != "" {
						t.Errorf("poll times (-want +got):\n%s", diff)
					}
				} else if n := len(tr.polls); n < 170 || n > 181 {
					t.Errorf("%d polls before expiry, want about 900s/5s", n)
				}
			})
		})
	}
}

// TestWebAppEmulator is the confidential web app (the Deskpro case)
// against the emulator: AuthCodeURL with an https redirect and no listener,
// the user's sign-in, ParseRedirect and Exchange with a client secret or a
// certificate (PS256 + x5t#S256 by default, RS256 + x5t, x5c), then a
// Refresh sending Graph's scopes that turns the one refresh token into a
// Graph token (rotated every time). A secret's ID pasted instead of its
// value gets AADSTS7000215 and the hint, without the secret.
func TestWebAppEmulator(t *testing.T) {
	e, err := emulator.New(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	demo := e.Demo()
	certPEM, keyPEM, err := e.AppCertificate(demo.ConfidentialID)
	if err != nil {
		t.Fatal(err)
	}
	loadCert := func(alg jose.SignatureAlgorithm, x5c bool) ClientAuth {
		c, err := LoadCertificate(append(certPEM, keyPEM...), "")
		if err != nil {
			t.Fatal(err)
		}
		c.Alg, c.SendX5C = alg, x5c
		return c
	}
	p, err := provider.Microsoft(provider.MicrosoftOptions{Tenant: demo.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	const redirect = "https://localhost/callback" // a registered Web redirect: nothing listens on it
	exchange := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send", "offline_access"}
	graph := []string{"https://graph.microsoft.com/Mail.Send", "offline_access"}
	for _, tt := range []struct {
		name string
		auth ClientAuth
	}{
		{"client secret", ClientSecret{Secret: demo.ConfidentialSecret}},
		{"certificate PS256 x5t#S256", loadCert("", false)},
		{"certificate RS256 x5t with x5c", loadCert(jose.RS256, true)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{HTTP: &http.Client{Transport: handlerTransport{e.Handler()}}, Provider: p, ClientID: demo.ConfidentialID, Auth: tt.auth}
			ar, err := c.AuthCodeURL(redirect, append(exchange, graph[0]), AuthOptions{LoginHint: "alice@contoso.com"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.SignIn(nil, "authorize", emulator.SignInRequest{URL: ar.URL, Username: demo.Users[0], Password: demo.Passwords[0]})
			if err != nil || res.RedirectURL == "" {
				t.Fatalf("sign-in: %v %+v", err, res)
			}
			code, err := ar.ParseRedirect(res.RedirectURL)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := c.Exchange(t.Context(), ar, code)
			if err != nil {
				t.Fatal(err)
			}
			at, ok := e.Lookup(tok.AccessToken)
			if !ok || at.Audience != "https://outlook.office.com" || at.UPN != "alice@contoso.com" || tok.RefreshToken == "" {
				t.Fatalf("exchange token: %+v (known %t), refresh %t", at, ok, tok.RefreshToken != "")
			}
			g, err := c.Refresh(t.Context(), tok.RefreshToken, graph)
			if err != nil {
				t.Fatal(err)
			}
			if gt, ok := e.Lookup(g.AccessToken); !ok || gt.Audience != "https://graph.microsoft.com" {
				t.Errorf("refresh with Graph's scopes: audience %q (known %t)", gt.Audience, ok)
			}
			if g.RefreshToken == "" || g.RefreshToken == tok.RefreshToken {
				t.Errorf("the rotated refresh token was not returned")
			}
		})
	}
	t.Run("the secret's ID instead of its value", func(t *testing.T) {
		const secretID = "5f0c8a9e-3c1d-4b7a-9e2f-1a2b3c4d5e6f"
		c := &Client{HTTP: &http.Client{Transport: handlerTransport{e.Handler()}}, Provider: p, ClientID: demo.ConfidentialID, Auth: ClientSecret{Secret: secretID}}
		_, err := c.ClientCredentials(t.Context(), []string{"https://outlook.office365.com/.default"})
		var oe *Error
		if !errors.As(err, &oe) || oe.FirstAADSTS() != 7000215 || !strings.Contains(oe.Hint, "secret's ID instead of its Value") ||
			oe.CorrelationID == "" || !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("err = %v (%+v)", err, oe)
		}
		if strings.Contains(err.Error(), secretID) {
			t.Error("the error shows the secret")
		}
	})
}
