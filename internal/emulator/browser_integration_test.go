package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// browserResult is what testdata/browser.mjs prints.
type browserResult struct {
	URL   string   `json:"url"`
	Title string   `json:"title"`
	Text  string   `json:"text"`
	Steps []string `json:"steps"`
}

// TestIntegrationChromiumPages walks the emulator's HTML pages in a real
// headless Chromium over HTTPS: the device page (code, sign-in, "are you
// trying to sign in") and the authorization-code sign-in with a forced
// consent page, each ending in a token. The Go tests drive the same pages
// with a form-parsing client; this one proves a browser can use them
// (forms, cookies, redirects).
func TestIntegrationChromiumPages(t *testing.T) {
	if os.Getenv("MAILOAUTH_INTEGRATION") != "1" {
		t.Skip("set MAILOAUTH_INTEGRATION=1; needs chromium (.ci/setup.d/31-chromium.sh) and playwright-core (.ci/setup.d/30-oidc-provider.sh)")
	}
	pwDir, err := filepath.Abs(filepath.Join("..", "testenv", "oidcprovider"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pwDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed (run bash .ci/setup.d/30-oidc-provider.sh): %v", err)
	}
	srv := startTLS(t)
	demo := srv.Demo()
	client := srv.HTTPClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	browse := func(t *testing.T, u, code string) browserResult {
		t.Helper()
		cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "browser.mjs"), u, demo.Users[0], demo.Passwords[0], code)
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_DIR="+pwDir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, stderr.String())
		}
		var r browserResult
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("chromium said %q: %v", out, err)
		}
		return r
	}
	token := func(t *testing.T, f url.Values) map[string]any {
		t.Helper()
		resp, err := client.PostForm(srv.URL+"/"+demo.TenantID+"/oauth2/v2.0/token", f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("token: %d %v %v", resp.StatusCode, m, err)
		}
		return m
	}
	checkToken := func(t *testing.T, m map[string]any, perm string) {
		t.Helper()
		tok, _ := m["access_token"].(string)
		at, ok := srv.Lookup(tok)
		if !ok || at.UPN != demo.Users[0] || !at.HasScope(perm) {
			t.Errorf("token grants %+v (%v), want %s for %s", at, ok, perm, demo.Users[0])
		}
	}

	t.Run("device code", func(t *testing.T) {
		resp, err := client.PostForm(srv.URL+"/"+demo.TenantID+"/oauth2/v2.0/devicecode", url.Values{
			"client_id": {demo.PublicClientID}, "scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}})
		if err != nil {
			t.Fatal(err)
		}
		var dc struct {
			DeviceCode      string `json:"device_code"`
			UserCode        string `json:"user_code"`
			VerificationURI string `json:"verification_uri"`
		}
		err = json.NewDecoder(resp.Body).Decode(&dc)
		resp.Body.Close()
		if err != nil || dc.DeviceCode == "" {
			t.Fatalf("devicecode: %v %+v", err, dc)
		}
		// A person types the code in lower case with a space; the page
		// must accept it.
		typed := strings.ToLower(dc.UserCode[:4] + " " + dc.UserCode[4:])
		r := browse(t, dc.VerificationURI, typed)
		if diff := cmp.Diff([]string{"code", "signin", "consent"}, r.Steps); diff != "" {
			t.Errorf("pages (-want +got)\n%s\nlast page: %s", diff, r.Text)
		}
		if !strings.Contains(r.Text, "You have signed in") {
			t.Errorf("last page: %q", r.Text)
		}
		m := token(t, url.Values{"grant_type": {grantDeviceURN}, "client_id": {demo.PublicClientID}, "device_code": {dc.DeviceCode}})
		checkToken(t, m, "IMAP.AccessAsUser.All")
	})

	t.Run("authorization code with consent", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan url.Values, 1)
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case got <- r.URL.Query():
			default:
			}
			fmt.Fprintln(w, "mailoauth test client: you can close this window")
		}), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
		redirect := "http://" + ln.Addr().String()
		verifier := strings.Repeat("chromium-verifier-", 3)
		sum := sha256.Sum256([]byte(verifier))
		q := url.Values{"client_id": {demo.PublicClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
			"scope": {"https://outlook.office.com/SMTP.Send offline_access openid"}, "state": {"st-chromium"}, "nonce": {"n-1"},
			"prompt": {"consent"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
		r := browse(t, srv.URL+"/organizations/oauth2/v2.0/authorize?"+q.Encode(), "")
		if diff := cmp.Diff([]string{"signin", "consent"}, r.Steps); diff != "" {
			t.Errorf("pages (-want +got)\n%s\nlast page: %s", diff, r.Text)
		}
		if !strings.HasPrefix(r.URL, redirect+"/?") || !strings.Contains(r.Text, "you can close this window") {
			t.Errorf("browser ended at %s: %q", r.URL, r.Text)
		}
		var back url.Values
		select {
		case back = <-got:
		default:
			t.Fatal("the redirect never reached the client's listener")
		}
		if back.Get("state") != "st-chromium" || back.Get("code") == "" {
			t.Fatalf("redirect query %v", back)
		}
		m := token(t, url.Values{"grant_type": {grantAuthCode}, "client_id": {demo.PublicClientID}, "code": {back.Get("code")},
			"redirect_uri": {redirect}, "code_verifier": {verifier}})
		checkToken(t, m, "SMTP.Send")
		if m["id_token"] == nil || m["refresh_token"] == nil {
			t.Errorf("token response without id_token or refresh_token: %v", m)
		}
	})
}
