package doctor

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReport checks the verdicts and the text layout: one line per
// finding, a fix under each one that is not ok, and the closing advice.
func TestReport(t *testing.T) {
	relogin := Finding{Step: StepTokens, Status: Fail, What: "login", Words: "not logged in", Fix: "run mailoauth login w", Relogin: true}
	broken := Finding{Step: StepApp, Status: Fail, What: "app credential", Words: "the client secret has expired", Fix: "New client secret"}
	fine := Finding{Step: StepConfig, Status: OK, What: "account", Words: "valid", Fix: "never shown"}
	tests := []struct {
		name     string
		findings []Finding
		failed   bool
		relogin  bool
		text     string
	}{
		{"healthy", []Finding{fine}, false, false,
			"ok    account  valid\n\nno problems found with w\n"},
		{"only a login", []Finding{fine, relogin}, true, true,
			"ok    account  valid\nFAIL  login    not logged in\n      fix: run mailoauth login w\n\nw needs a new sign-in: run mailoauth login w\n"},
		{"a real problem", []Finding{broken, relogin}, true, false,
			"FAIL  app credential  the client secret has expired\n      fix: New client secret\nFAIL  login           not logged in\n      fix: run mailoauth login w\n\n" +
				"w has 2 problem(s); fix the first one first, then run mailoauth doctor w again\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{Account: "w", Findings: tt.findings}
			var b strings.Builder
			if err := rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			got := []any{rep.Failed(), rep.OnlyRelogin(), b.String()}
			if diff := cmp.Diff([]any{tt.failed, tt.relogin, tt.text}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestNetWords checks that TLS and connection failures are named in plain
// words with the right fix.
func TestNetWords(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		words     string
		fix       string
		recognise bool
	}{
		{"unknown authority", fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), "does not trust", "ca_file", true},
		{"wrong name", x509.HostnameError{Certificate: &x509.Certificate{DNSNames: []string{"proxy.corp"}}, Host: "login.microsoftonline.com"},
			"for another name (proxy.corp)", "host name", true},
		{"expired", x509.CertificateInvalidError{Reason: x509.Expired}, "not valid now", "date and time", true},
		{"dns", &net.DNSError{Name: "login.microsoftonline.cm", Err: "no such host"}, "login.microsoftonline.cm does not resolve", "spelling", true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, "cannot connect", "firewall", true},
		{"other", errors.New("something else"), "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			words, fix := netWords(tt.err, "https://login.microsoftonline.com/x")
			if (words != "") != tt.recognise || !strings.Contains(words, tt.words) || !strings.Contains(fix, tt.fix) {
				t.Errorf("netWords = %q, %q; want words with %q and fix with %q", words, fix, tt.words, tt.fix)
			}
		})
	}
}
