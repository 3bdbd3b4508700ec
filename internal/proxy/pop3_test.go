package proxy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const pop3Greeting = "+OK proxy.test mailoauth proxy ready"

func TestPOP3(t *testing.T) {
	tests := []struct {
		name     string
		script   []string
		loggedIn bool
	}{
		{"capa noop quit", []string{
			"> CAPA",
			"< +OK Capability list follows",
			"< USER",
			"< SASL PLAIN",
			"< .",
			"> NOOP",
			"< +OK",
			"> QUIT",
			"< +OK Bye",
			"<EOF",
		}, false},
		{"before login", []string{
			"> STAT",
			"< -ERR Log in first",
			"> PASS x",
			"< -ERR USER first",
			"> STLS",
			"< -ERR STLS not available",
			"> AUTH XOAUTH2",
			"< -ERR Unsupported authentication mechanism",
			"> AUTH",
			"< +OK",
			"< PLAIN",
			"< .",
			"> AUTH PLAIN",
			"< + ",
			"> *",
			"< -ERR Authentication cancelled",
			"> AUTH PLAIN %%%",
			"< -ERR Invalid SASL PLAIN response",
			"> USER",
			"< -ERR USER needs a name",
		}, false},
		{"USER PASS", []string{
			"> USER " + testEmail,
			"< +OK",
			"> PASS " + testPass,
			"< +OK Logged in",
		}, true},
		{"AUTH PLAIN initial response", []string{
			"> AUTH PLAIN " + plainIR(testEmail, testPass),
			"< +OK Logged in",
		}, true},
		{"AUTH PLAIN two steps", []string{
			"> AUTH PLAIN",
			"< + ",
			"> " + plainIR(testEmail, testPass),
			"< +OK Logged in",
		}, true},
		{"wrong password then right", []string{
			"> USER " + testEmail,
			"< +OK",
			"> PASS nope",
			"< -ERR [AUTH] Authentication failed",
			"> PASS " + testPass,
			"< -ERR USER first",
			"> USER " + testEmail,
			"< +OK",
			"> PASS " + testPass,
			"< +OK Logged in",
		}, true},
		{"line too long", []string{
			"> USER " + strings.Repeat("x", DefaultMaxLine),
			"< -ERR Line too long",
			"<EOF",
		}, false},
		{"AUTH PLAIN answer too long", []string{
			"> AUTH PLAIN",
			"< + ",
			"> " + strings.Repeat("A", DefaultMaxLine),
			"< -ERR Line too long",
			"<EOF",
		}, false},
		{"pipelined garbage", []string{
			">raw " + strings.Repeat("GARBAGE\r\n", 10),
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first",
			"< -ERR Log in first; too many invalid commands",
			"<EOF",
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "pop3", nil)
			c := e.dial()
			c.run("< " + pop3Greeting)
			c.run(tt.script...)
			if !tt.loggedIn {
				return
			}
			c.run("> STAT", "< +OK STAT relayed", "> QUIT", "< +OK Logging out.", "<EOF")
			logins, _, after := e.fake.stats()
			if logins != 1 {
				t.Errorf("upstream logins = %d, want 1", logins)
			}
			if diff := cmp.Diff([]string{"STAT", "QUIT"}, after); diff != "" {
				t.Errorf("relayed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPOP3UpstreamRejectsToken(t *testing.T) {
	e := newEnv(t, "pop3", nil)
	e.token = "expired-token"
	e.dial().run("< "+pop3Greeting,
		"> USER "+testEmail, "< +OK",
		"> PASS "+testPass,
		"< -ERR [SYS/TEMP] The mail server refused the account's token; see the proxy's log",
	)
	_, acks, _ := e.fake.stats()
	if diff := cmp.Diff([]string{""}, acks); diff != "" {
		t.Errorf("challenge acknowledgement (-want +got):\n%s", diff)
	}
	if _, _, rej := e.counts(); !cmp.Equal(rej, []string{"work"}) {
		t.Errorf("Rejected calls = %v, want [work]", rej)
	}
}

func TestPOP3CapaRelaysUpstream(t *testing.T) {
	e := newEnv(t, "pop3", nil)
	probe(t, e)
	e.dial().run("< "+pop3Greeting,
		"> CAPA",
		"< +OK Capability list follows",
		"< TOP",
		"< UIDL",
		"< USER",
		"< SASL PLAIN",
		"< .",
	)
}

// TestTokenRefused: which final answers to the OAuth login count as the
// server refusing the token (so the token layer drops it), in Dovecot's
// and Exchange Online's words, and which are passing conditions.
func TestTokenRefused(t *testing.T) {
	imap := map[string]bool{
		"NO [AUTHENTICATIONFAILED] Authentication failed.": true, // Dovecot
		"NO AUTHENTICATE failed.":                          true, // Exchange Online
		"NO [UNAVAILABLE] Try again later":                 false,
		"NO [LIMIT] Too many sessions":                     false,
		"BAD Unknown mechanism":                            false,
	}
	for line, want := range imap {
		if got := imapTokenRefused(line); got != want {
			t.Errorf("imapTokenRefused(%q) = %v, want %v", line, got, want)
		}
	}
	pop3 := map[string]bool{
		"-ERR [AUTH] Authentication failed.":                              true, // Dovecot
		"-ERR Authentication failure: unknown user name or bad password.": true, // Exchange Online
		"-ERR [SYS/TEMP] Try again later":                                 false,
		"-ERR [IN-USE] Mailbox locked":                                    false,
		"-ERR [LOGIN-DELAY] Wait":                                         false,
		"+OK":                                                             false,
	}
	for line, want := range pop3 {
		if got := pop3TokenRefused(line); got != want {
			t.Errorf("pop3TokenRefused(%q) = %v, want %v", line, got, want)
		}
	}
}
