package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/emulator"
)

// TestSharedMailboxUserToken checks a shared mailbox opened with a user's
// token: the account signs in as alice, its email is bob's mailbox (alice
// has FullAccess and SendAs there, as Add-MailboxPermission and
// Add-RecipientPermission give). IMAP, POP3 and SMTP log in with user=bob,
// Graph goes to /users/bob (never /me, which is alice's own mailbox), check
// lists bob's mail, and send, over SMTP and Graph, sends as bob.
func TestSharedMailboxUserToken(t *testing.T) {
	env := startDemoEnv(t, false)
	alice, bob := env.User, env.Demo.Users[1]
	must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, User: alice, Mailbox: bob, FullAccess: ptr(true), SendAs: ptr(true)}))
	must(t, env.Exchange.Deliver(bob, []byte("From: carol@example.net\r\nTo: "+bob+"\r\nSubject: for the shared box\r\nDate: Sun, 22 Nov 2026 01:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nhello\r\n")))

	// The account "shared" is the demo user's account with bob's address
	// and the *.Shared Graph scopes.
	raw, err := os.ReadFile(env.ConfigFile)
	must(t, err)
	cfg := string(raw)
	start := strings.Index(cfg, "[accounts.demo]\n")
	end := strings.Index(cfg, "[accounts.demo-app]\n")
	if start < 0 || end < start {
		t.Fatalf("demo config has no [accounts.demo] before [accounts.demo-app]:\n%s", cfg)
	}
	sec := strings.Replace(cfg[start:end], "[accounts.demo]", "[accounts.shared]", 1)
	sec = strings.Replace(sec, `email = "`+alice+`"`, `email = "`+bob+`"`, 1)
	sec = strings.Replace(sec, `"graph-mail"`, `"https://graph.microsoft.com/Mail.ReadWrite.Shared", "https://graph.microsoft.com/Mail.Send.Shared"`, 1)
	must(t, os.WriteFile(env.ConfigFile, []byte(cfg+"\n"+sec), 0o600))
	env.Config, err = config.Load(env.ConfigFile)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, env.SignIn(ctx, "shared")) // approved as alice

	code, out, errOut := runCLI(t, env.ConfigFile, "", "check", "shared", "--recent", "1")
	if code != ExitOK {
		t.Fatalf("check: exit code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, w := range []string{
		"logged in with XOAUTH2 as " + bob, "GRAPH https://", "/v1.0/users/" + bob + " as " + bob, "listed the inbox of /users/" + bob,
		"for the shared box",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("check output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "/v1.0/me") {
		t.Errorf("check used /me (alice's own mailbox) for the shared mailbox:\n%s", out)
	}

	for _, via := range []string{"smtp", "graph"} {
		subject := "from the shared box via " + via
		code, out, errOut := runCLI(t, env.ConfigFile, "body\n", "send", "shared", "--to", alice, "--subject", subject, "--via", via)
		if code != ExitOK {
			t.Fatalf("send --via %s: exit code %d\nstdout:\n%s\nstderr:\n%s", via, code, out, errOut)
		}
		var found bool
		for _, m := range env.Exchange.Messages(alice, "inbox") {
			if m.Subject == subject {
				found = true
				if !strings.EqualFold(m.From.Address, bob) {
					t.Errorf("send --via %s: from %q, want %s", via, m.From.Address, bob)
				}
			}
		}
		if !found {
			t.Errorf("send --via %s: %q not in %s's inbox", via, subject, alice)
		}
	}
}
