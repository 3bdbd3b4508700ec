package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// MSAL Go is a second, third-party client: these tests check that Microsoft's
// own library completes its flows against the emulator over HTTPS.

func startTLS(t *testing.T) *Server {
	t.Helper()
	srv, err := Start(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

func TestMSALDeviceCodeAndSilentRefresh(t *testing.T) {
	srv := startTLS(t)
	demo := srv.Demo()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pca, err := public.New(demo.PublicClientID, public.WithAuthority(srv.URL+"/organizations"),
		public.WithHTTPClient(srv.HTTPClient()), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	scopes := []string{"https://outlook.office.com/IMAP.AccessAsUser.All"}
	dc, err := pca.AcquireTokenByDeviceCode(ctx, scopes)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dc.Result.Message, dc.Result.UserCode) {
		t.Errorf("message %q lacks the user code", dc.Result.Message)
	}
	type result struct {
		res public.AuthResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := dc.AuthenticationResult(ctx)
		done <- result{res, err}
	}()
	// Approve while MSAL polls, through the HTTP admin API.
	admin := srv.HTTPClient()
	for srv.Counts()["token:device_code"] < 2 {
		select {
		case r := <-done:
			t.Fatalf("MSAL stopped polling before approval: %v", r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	body := `{"user_code":"` + dc.Result.UserCode + `","user":"alice@contoso.com"}`
	resp, err := admin.Post(srv.URL+"/_emulator/devicecode/approve", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("device code: %v", r.err)
	}
	if r.res.Account.PreferredUsername != "alice@contoso.com" {
		t.Errorf("account = %+v", r.res.Account)
	}
	at, ok := srv.Lookup(r.res.AccessToken)
	if !ok || at.Resource != ExchangeAppID || !at.HasScope("IMAP.AccessAsUser.All") {
		t.Fatalf("Lookup = %+v, %v", at, ok)
	}

	// Refresh: expire the access token in the emulator and pin a short
	// lifetime so MSAL's cache also sees the next token as due; the silent
	// call must then use the refresh token.
	if err := srv.ExpireToken(r.res.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateSettings(func(s *Settings) { s.ExpiresIn = 60 }); err != nil {
		t.Fatal(err)
	}
	// The cached token still looks valid to MSAL (it cannot know); a
	// token for another resource forces the refresh-token path at once.
	graph, err := pca.AcquireTokenSilent(ctx, []string{"https://graph.microsoft.com/Mail.Send"}, public.WithSilentAccount(r.res.Account))
	if err != nil {
		t.Fatalf("silent (graph): %v", err)
	}
	if gat, _ := srv.Lookup(graph.AccessToken); gat.Resource != GraphAppID {
		t.Errorf("graph token for %s", gat.Resource)
	}
	// That token lives 60 s, inside MSAL's 5-minute margin: the next silent
	// call refreshes again.
	before := srv.Counts()["token:refresh_token"]
	again, err := pca.AcquireTokenSilent(ctx, []string{"https://graph.microsoft.com/Mail.Send"}, public.WithSilentAccount(r.res.Account))
	if err != nil {
		t.Fatalf("silent (refresh): %v", err)
	}
	if srv.Counts()["token:refresh_token"] != before+1 || again.AccessToken == graph.AccessToken {
		t.Errorf("silent call did not refresh (refresh count %d → %d)", before, srv.Counts()["token:refresh_token"])
	}
}

func TestMSALClientCredentials(t *testing.T) {
	srv := startTLS(t)
	demo := srv.Demo()
	certPEM, keyPEM, err := srv.AppCertificate(demo.ConfidentialID)
	if err != nil {
		t.Fatal(err)
	}
	certs, key, err := confidential.CertFromPEM(append(certPEM, keyPEM...), "")
	if err != nil {
		t.Fatal(err)
	}
	certCred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		t.Fatal(err)
	}
	secretCred, err := confidential.NewCredFromSecret(demo.ConfidentialSecret)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cred confidential.Credential
		opts []confidential.Option
	}{
		{"secret", secretCred, nil},
		{"certificate", certCred, nil},
		{"certificate with x5c", certCred, []confidential.Option{confidential.WithX5C()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			opts := append([]confidential.Option{confidential.WithHTTPClient(srv.HTTPClient()), confidential.WithInstanceDiscovery(false)}, tc.opts...)
			cca, err := confidential.New(srv.URL+"/"+demo.TenantID, demo.ConfidentialID, tc.cred, opts...)
			if err != nil {
				t.Fatal(err)
			}
			res, err := cca.AcquireTokenByCredential(ctx, []string{"https://outlook.office365.com/.default"})
			if err != nil {
				t.Fatalf("client credentials: %v", err)
			}
			at, ok := srv.Lookup(res.AccessToken)
			if !ok || !at.AppOnly() || !at.HasRole("IMAP.AccessAsApp") || !at.HasRole("SMTP.SendAsApp") {
				t.Errorf("Lookup = %+v", at)
			}
		})
	}
}

// TestMSALRealAuthorityHost points MSAL at the real global authority host
// and routes every dial to the emulator: the server certificate carries the
// host name, and the emulator answers as the global cloud.
func TestMSALRealAuthorityHost(t *testing.T) {
	srv := startTLS(t)
	demo := srv.Demo()
	cred, err := confidential.NewCredFromSecret(demo.ConfidentialSecret)
	if err != nil {
		t.Fatal(err)
	}
	client := srv.RedirectingHTTPClient()
	cca, err := confidential.New("https://login.microsoftonline.com/"+demo.TenantDomain, demo.ConfidentialID, cred,
		confidential.WithHTTPClient(client), confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cca.AcquireTokenByCredential(ctx, []string{"https://graph.microsoft.com/.default"})
	if err != nil {
		t.Fatal(err)
	}
	if at, _ := srv.Lookup(res.AccessToken); at.Resource != GraphAppID || !at.HasRole("Mail.Send") {
		t.Errorf("Lookup = %+v", at)
	}
}

// TestMSALInteractive runs MSAL's authorization-code flow (its own loopback
// listener, PKCE S256) with the browser replaced by the admin sign-in API,
// which walks the same sign-in and consent steps as the HTML pages.
func TestMSALInteractive(t *testing.T) {
	srv := startTLS(t)
	demo := srv.Demo()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := srv.HTTPClient()
	browserErr := make(chan error, 1)
	openURL := func(authURL string) error {
		go func() {
			body, _ := json.Marshal(SignInRequest{URL: authURL, Username: demo.Users[0], Password: demo.Passwords[0]})
			resp, err := client.Post(srv.URL+"/_emulator/signin", "application/json", bytes.NewReader(body))
			if err != nil {
				browserErr <- err
				return
			}
			var res SignInResult
			err = json.NewDecoder(resp.Body).Decode(&res)
			resp.Body.Close()
			if err != nil || res.RedirectURL == "" {
				browserErr <- fmt.Errorf("sign-in: %v %+v", err, res)
				return
			}
			// The "browser" follows the redirect to MSAL's loopback listener
			// (MSAL asks for response_mode=form_post: the page auto-posts).
			var back *http.Response
			if res.ResponseMode == "form_post" {
				f := url.Values{}
				for k, v := range res.Params {
					f.Set(k, v)
				}
				back, err = http.PostForm(res.RedirectURL, f)
			} else {
				back, err = http.Get(res.RedirectURL)
			}
			if err == nil {
				back.Body.Close()
			}
			browserErr <- err
		}()
		return nil
	}
	pca, err := public.New(demo.PublicClientID, public.WithAuthority(srv.URL+"/organizations"),
		public.WithHTTPClient(client), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	res, err := pca.AcquireTokenInteractive(ctx, []string{"https://outlook.office.com/SMTP.Send"},
		public.WithRedirectURI("http://localhost"), public.WithOpenURL(openURL))
	if err != nil {
		t.Fatalf("interactive: %v (browser: %v)", err, <-browserErr)
	}
	if err := <-browserErr; err != nil {
		t.Errorf("browser: %v", err)
	}
	at, ok := srv.Lookup(res.AccessToken)
	if !ok || at.UPN != demo.Users[0] || !at.HasScope("SMTP.Send") {
		t.Errorf("Lookup = %+v", at)
	}
	if srv.Counts()["token:authorization_code"] != 1 {
		t.Errorf("counts = %v", srv.Counts())
	}
}
