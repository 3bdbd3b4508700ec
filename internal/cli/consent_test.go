package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// consentAs runs the emulator's admin consent page for rawURL as user
// (pressing Accept, or Decline when decline is set) and returns where the
// browser is sent.
func (e *emuEnv) consentAs(rawURL, user string, decline bool) string {
	e.t.Helper()
	pw := e.password(user)
	req := emulator.SignInRequest{URL: rawURL, Username: user, Password: pw}
	if decline {
		req.Consent = "decline"
	}
	var res emulator.SignInResult
	e.admin("/_emulator/adminconsent", req, &res)
	if res.RedirectURL == "" {
		e.t.Fatalf("admin consent ended on page %q: %s %s", res.Page, res.Error, res.Description)
	}
	return res.RedirectURL
}

// TestConsentFlows runs `mailoauth consent` against the emulator: the browser
// (here an HTTP client following the redirect) reaches the listener on
// 127.0.0.1, or the final URL is pasted; the result or the error with its
// hint is reported, and --json gives every field.
func TestConsentFlows(t *testing.T) {
	e := newEmuEnv(t)
	alice, bob := "alice@contoso.com", "bob@contoso.com"
	tests := []struct {
		name     string
		args     []string
		user     string
		decline  bool
		paste    bool
		wantCode int
		wantErr  []string // in stderr
		wantPage string   // on the listener's page (browser cases)
	}{
		{name: "v2 granted by an administrator", args: []string{"--no-browser"}, user: alice,
			wantErr: []string{"sign in as an administrator of tenant " + e.demo.TenantID, "/" + e.demo.TenantID + "/v2.0/adminconsent?",
				"scope=https%3A%2F%2Foutlook.office365.com%2F.default", "Admin consent granted in tenant " + e.demo.TenantID + ".",
				"Scope: https://outlook.office365.com/IMAP.AccessAsUser.All", "Next: mailoauth login dev"},
			wantPage: `class="ok">Consent granted</h1>`},
		{name: "v1 granted, final URL pasted", args: []string{"--v1", "--no-browser", "--paste"}, user: alice, paste: true,
			wantErr: []string{"/" + e.demo.TenantID + "/adminconsent?", "paste the full URL", "Admin consent granted in tenant " + e.demo.TenantID + "."}},
		{name: "a user who is no administrator", args: []string{"--no-browser", "--json"}, user: bob, wantCode: ExitError,
			wantErr:  []string{"consent_required", "AADSTS90094", "Hint: the account that signed in is not an administrator of this tenant"},
			wantPage: `class="fail">Consent failed</h1>`},
		{name: "the administrator declines", args: []string{"--no-browser"}, user: alice, decline: true, wantCode: ExitError,
			wantErr: []string{"access_denied", "AADSTS65004", "Hint: the administrator cancelled or declined the consent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.with(t)
			page := make(chan string, 1)
			var (
				stdin io.Reader
				paste *io.PipeWriter
			)
			if tt.paste {
				var pr *io.PipeReader
				pr, paste = io.Pipe()
				defer paste.Close()
				stdin = pr
			}
			watch := onceURL(func(u string) {
				redirect := e.consentAs(u, tt.user, tt.decline)
				if paste != nil {
					io.WriteString(paste, redirect+"\n")
					page <- ""
					return
				}
				resp, err := http.Get(redirect) // the browser arriving at the listener
				if err != nil {
					page <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				page <- string(body)
			})
			r := e.exec(stdin, watch, append([]string{"consent", "dev"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tt.wantCode, r.err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if p := <-page; !strings.Contains(p, tt.wantPage) {
				t.Errorf("listener page lacks %q:\n%.600s", tt.wantPage, p)
			}
			if slices.Contains(tt.args, "--json") {
				var got struct{ Error errorJSON }
				if err := json.Unmarshal([]byte(r.out), &got); err != nil {
					t.Fatalf("--json output: %v\n%s", err, r.out)
				}
				if got.Error.Code != "consent_required" || len(got.Error.AADSTS) == 0 || got.Error.AADSTS[0] != 90094 ||
					got.Error.CorrelationID == "" || got.Error.Hint == "" || got.Error.Endpoint != "admin consent" {
					t.Errorf("--json error lacks fields: %+v", got.Error)
				}
			}
		})
	}

	t.Run("common is refused before any request", func(t *testing.T) {
		e := e.with(t)
		before := e.srv.Counts()
		for _, args := range [][]string{{"consent", "multi", "--no-browser"}, {"consent", "multi", "--url-only"}} {
			r := e.exec(nil, nil, args...)
			if r.code != ExitError || !strings.Contains(r.err, "not common or consumers") || strings.Contains(r.err, "http") {
				t.Errorf("%v: exit %d\n%s", args, r.code, r.err)
			}
		}
		if after := e.srv.Counts(); after["adminconsent"] != before["adminconsent"] {
			t.Errorf("admin consent requests %v → %v", before, after)
		}
	})
}
