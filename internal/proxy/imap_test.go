package proxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	imapGreeting = "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN] proxy.test mailoauth proxy ready"
	// imapGreetingKnown is the greeting once the upstream's capabilities
	// are known (after a login or Probe): its IDLE is offered too.
	imapGreetingKnown = "* OK [CAPABILITY IMAP4rev1 IDLE SASL-IR LITERAL+ ID AUTH=PLAIN] proxy.test mailoauth proxy ready"
)

func TestIMAPPreLogin(t *testing.T) {
	tests := []struct {
		name   string
		script []string
	}{
		{"capability noop id logout", []string{
			"< " + imapGreeting,
			"> a1 CAPABILITY",
			"< * CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN",
			"< a1 OK CAPABILITY completed",
			"> a2 noop",
			"< a2 OK NOOP completed",
			`> a3 ID ("name" "curl" "version" {4+}`,
			`> 8.1)`,
			`< * ID ("name" "mailoauth")`,
			"< a3 OK ID completed",
			"> a4 LOGOUT",
			"< * BYE Logging out",
			"< a4 OK LOGOUT completed",
			"<EOF",
		}},
		{"commands before login", []string{
			"< " + imapGreeting,
			"> a1 SELECT INBOX",
			"< a1 BAD Log in first",
			"> a2 FROBNICATE",
			"< a2 BAD Unknown command",
			"> a3 STARTTLS",
			"< a3 BAD STARTTLS not available",
			"> a4 AUTHENTICATE XOAUTH2",
			"< a4 NO Unsupported authentication mechanism",
			"> a5 LOGIN onlyuser",
			"< a5 BAD LOGIN needs a user name and a password",
		}},
		{"syntax errors", []string{
			"< " + imapGreeting,
			`> a1 LOGIN "unterminated`,
			"< a1 BAD Syntax error",
			`> a+b NOOP`,
			"< * BAD Syntax error",
			`> a2 LOGIN "bad\escape" x`,
			"< a2 BAD Syntax error",
			`> a3 LOGIN x {3}y`,
			"< a3 BAD Syntax error",
			`> a4`,
			"< a4 BAD Syntax error",
			"> ",
			"< * BAD Syntax error",
		}},
		{"authenticate cancelled and bad base64", []string{
			"< " + imapGreeting,
			"> a1 AUTHENTICATE PLAIN",
			"< + ",
			"> *",
			"< a1 BAD Authentication cancelled",
			"> a2 AUTHENTICATE PLAIN !!!notbase64",
			"< a2 BAD Invalid SASL PLAIN response",
			"> a3 AUTHENTICATE PLAIN " + b64s("no-nul-here"),
			"< a3 BAD Invalid SASL PLAIN response",
			"> a4 AUTHENTICATE PLAIN " + b64s("other@example.test\x00"+testEmail+"\x00"+testPass),
			"< a4 BAD Invalid SASL PLAIN response",
		}},
		{"line too long", []string{
			"< " + imapGreeting,
			"> a1 LOGIN " + strings.Repeat("x", DefaultMaxLine),
			"< * BYE Line too long",
			"<EOF",
		}},
		{"authenticate answer too long", []string{
			"< " + imapGreeting,
			"> a1 AUTHENTICATE PLAIN",
			"< + ",
			"> " + strings.Repeat("A", DefaultMaxLine),
			"< * BYE Line too long",
			"<EOF",
		}},
		{"literal bomb synchronizing", []string{
			"< " + imapGreeting,
			"> a1 LOGIN {4294967295}",
			"< * BYE Literal too large",
			"<EOF",
		}},
		{"literal bomb non-synchronizing", []string{
			"< " + imapGreeting,
			"> a1 LOGIN {100000+}",
			"< * BYE Literal too large",
			"<EOF",
		}},
		{"literals add up", []string{
			"< " + imapGreeting,
			"> a1 LOGIN {4000+}",
			"> " + strings.Repeat("u", 4000) + " {97+}",
			"< * BYE Literal too large",
			"<EOF",
		}},
		{"empty literals chained across lines", []string{
			"< " + imapGreeting,
			">raw a1 ID (" + strings.Repeat("{0+}\r\n ", 2000) + ")\r\n",
			"< * BYE Line too long",
			"<EOF",
		}},
		{"lines after literals add up", []string{
			"< " + imapGreeting,
			">raw a1 ID ({0+}\r\n " + strings.Repeat("x", 5000) + " {0+}\r\n " + strings.Repeat("y", 5000) + ")\r\n",
			"< * BYE Line too long",
			"<EOF",
		}},
		{"too many arguments", []string{
			"< " + imapGreeting,
			"> a1 ID (" + strings.Repeat("x ", maxArgs) + ")",
			"< * BYE Line too long",
			"<EOF",
		}},
		{"pipelined garbage", []string{
			"< " + imapGreeting,
			">raw " + strings.Repeat("x\r\n", 12),
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< x BAD Syntax error",
			"< * BYE Too many invalid commands",
			"<EOF",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "imap", nil)
			e.dial().run(tt.script...)
			if _, n, _ := e.counts(); n != 0 {
				t.Errorf("%d token requests, want 0", n)
			}
		})
	}
}

func TestIMAPLogin(t *testing.T) {
	okLine := "OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"
	tests := []struct {
		name   string
		script []string
	}{
		{"LOGIN quoted", []string{
			"> a1 LOGIN " + quoteIMAP(testEmail) + " " + quoteIMAP(testPass),
			"< a1 " + okLine,
		}},
		{"LOGIN atom and upper-case email", []string{
			"> a1 login ALICE@EXAMPLE.TEST " + quoteIMAP(testPass),
			"< a1 " + okLine,
		}},
		{"LOGIN synchronizing literals", []string{
			"> a1 LOGIN {18}",
			"< + Ready for literal data",
			">raw " + testEmail + " {13}\r\n",
			"< + Ready for literal data",
			">raw " + testPass + "\r\n",
			"< a1 " + okLine,
		}},
		{"LOGIN LITERAL+", []string{
			"> a1 LOGIN {18+}",
			"> " + testEmail + " {13+}",
			"> " + testPass,
			"< a1 " + okLine,
		}},
		{"AUTHENTICATE PLAIN SASL-IR", []string{
			"> a1 AUTHENTICATE PLAIN " + plainIR(testEmail, testPass),
			"< a1 " + okLine,
		}},
		{"AUTHENTICATE PLAIN continuation, authzid = user", []string{
			"> a1 AUTHENTICATE plain",
			"< + ",
			"> " + b64s(testEmail+"\x00"+testEmail+"\x00"+testPass),
			"< a1 " + okLine,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "imap", nil)
			c := e.dial()
			c.run("< " + imapGreeting)
			c.run(tt.script...)
			// After login every byte goes to the server unchanged.
			c.run(
				"> b1 SELECT INBOX",
				"< b1 OK SELECT relayed",
				"> b2 LOGOUT",
				"< * BYE Logging out",
				"< b2 OK Logout completed.",
				"<EOF",
			)
			logins, _, after := e.fake.stats()
			if logins != 1 {
				t.Errorf("upstream logins = %d, want 1", logins)
			}
			if diff := cmp.Diff([]string{"b1 SELECT INBOX", "b2 LOGOUT"}, after); diff != "" {
				t.Errorf("relayed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIMAPPipelinedAfterLogin(t *testing.T) {
	e := newEnv(t, "imap", nil)
	c := e.dial()
	c.run("< "+imapGreeting,
		">raw a1 LOGIN "+testEmail+" "+quoteIMAP(testPass)+"\r\nb1 NOOP\r\nb2 LOGOUT\r\n",
		"< a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in",
		"< b1 OK NOOP relayed",
		"< * BYE Logging out",
		"< b2 OK Logout completed.",
		"<EOF")
}

func TestIMAPWrongPassword(t *testing.T) {
	e := newEnv(t, "imap", nil)
	c := e.dial()
	c.run("< "+imapGreeting,
		"> a1 LOGIN "+testEmail+" wrong",
		"< a1 NO [AUTHENTICATIONFAILED] Authentication failed",
		"> a2 LOGIN "+testEmail+" wrong-again",
		"< a2 NO [AUTHENTICATIONFAILED] Authentication failed",
		"> a3 LOGIN nobody@example.test "+quoteIMAP(testPass),
		"< a3 NO [AUTHENTICATIONFAILED] Authentication failed",
		"> a4 LOGIN "+testEmail+" wrong-thrice",
		"< a4 NO [AUTHENTICATIONFAILED] Authentication failed",
		"> a5 LOGIN "+testEmail+" "+quoteIMAP(testPass),
		"< a5 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in",
	)
	delays, tokens, _ := e.counts()
	want := []time.Duration{time.Second, 2 * time.Second, time.Second, 4 * time.Second}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	if tokens != 1 {
		t.Errorf("token requests = %d, want 1 (none for the wrong passwords)", tokens)
	}
	if log := e.logs.String(); !strings.Contains(log, "reason=\"wrong password\"") || !strings.Contains(log, "reason=\"unknown user\"") {
		t.Errorf("log lacks the refusals:\n%s", log)
	}
	// The penalty was cleared by the success.
	c2 := e.dial()
	c2.run("< "+imapGreetingKnown, "> a1 LOGIN "+testEmail+" wrong", "< a1 NO [AUTHENTICATIONFAILED] Authentication failed")
	if delays, _, _ := e.counts(); delays[len(delays)-1] != time.Second {
		t.Errorf("delay after a success = %v, want 1s", delays[len(delays)-1])
	}
}

func TestIMAPUpstreamRejectsToken(t *testing.T) {
	e := newEnv(t, "imap", nil)
	e.token = "expired-token"
	c := e.dial()
	start := time.Now()
	c.run("< "+imapGreeting,
		"> a1 LOGIN "+testEmail+" "+quoteIMAP(testPass),
		"< a1 NO [UNAVAILABLE] The mail server refused the account's token; see the proxy's log",
		"> a2 NOOP",
		"< a2 OK NOOP completed",
	)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failure took %v", d)
	}
	_, acks, _ := e.fake.stats()
	if diff := cmp.Diff([]string{""}, acks); diff != "" {
		t.Errorf("XOAUTH2 challenge acknowledgement (-want +got):\n%s", diff)
	}
	if _, _, rej := e.counts(); !cmp.Equal(rej, []string{"work"}) {
		t.Errorf("Rejected calls = %v, want [work]", rej)
	}
}

func TestIMAPUpstreamDown(t *testing.T) {
	e := newEnv(t, "imap", nil)
	e.fake.ln.Close()
	e.dial().run("< "+imapGreeting,
		"> a1 LOGIN "+testEmail+" "+quoteIMAP(testPass),
		"< a1 NO [UNAVAILABLE] The proxy could not connect to the mail server; see the proxy's log",
	)
	if _, _, rej := e.counts(); len(rej) != 0 {
		t.Errorf("Rejected called for a connection failure: %v", rej)
	}
}

// TestNoLocalPassword: an account on the listener whose local password was
// never set fails like a wrong password for the client, and the log names
// the command that fixes it.
func TestNoLocalPassword(t *testing.T) {
	e := newEnv(t, "imap", func(c *Config) {
		c.Accounts = append(c.Accounts, Account{Name: "nopw", Email: "nopw@example.test", Upstream: c.Accounts[0].Upstream})
	})
	e.dial().run("< "+imapGreeting,
		"> a LOGIN nopw@example.test whatever",
		"< a NO [AUTHENTICATIONFAILED] Authentication failed")
	if log := e.logs.String(); !strings.Contains(log, "run mailoauth proxy passwd nopw") {
		t.Errorf("log does not name the fix:\n%s", log)
	}
	if _, n, _ := e.counts(); n != 0 {
		t.Errorf("%d token requests, want 0", n)
	}
}

// TestIMAPNoToken: when the token layer has no token (a login is needed),
// the client hears that, not that the server refused, and the log has the
// token layer's words.
func TestIMAPNoToken(t *testing.T) {
	e := newEnv(t, "imap", func(c *Config) {
		c.Token = func(context.Context, string, string) (string, error) {
			return "", errors.New("work: login needed: run mailoauth login work")
		}
	})
	e.dial().run("< "+imapGreeting,
		"> a1 LOGIN "+testEmail+" "+quoteIMAP(testPass),
		"< a1 NO [UNAVAILABLE] The proxy has no token for this account; see the proxy's log")
	if log := e.logs.String(); !strings.Contains(log, "run mailoauth login work") {
		t.Errorf("log lacks the token layer's error:\n%s", log)
	}
	if _, _, rej := e.counts(); len(rej) != 0 {
		t.Errorf("Rejected called without a token: %v", rej)
	}
}
