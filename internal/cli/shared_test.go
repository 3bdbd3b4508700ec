package cli

import (
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/internal/demo"
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
	addDemoAccount(t, env, "shared", func(sec string) string {
		sec = strings.Replace(sec, `email = "`+alice+`"`, `email = "`+bob+`"`, 1)
		return strings.Replace(sec, `"graph-mail"`, `"https://graph.microsoft.com/Mail.ReadWrite.Shared", "https://graph.microsoft.com/Mail.Send.Shared"`, 1)
	})
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

	// Without FullAccess, Exchange's generic refusal; the hint names it.
	must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, User: alice, Mailbox: bob, FullAccess: ptr(false)}))
	code, out, _ = runCLI(t, env.ConfigFile, "", "check", "shared", "--imap")
	if code != ExitError || !strings.Contains(out, "server said: NO AUTHENTICATE failed.") || !strings.Contains(out, "the signed-in user has FullAccess on it") {
		t.Errorf("shared mailbox without FullAccess: exit %d\n%s", code, out)
	}
	must(t, env.Emulator.ChangeExchange(emulator.ExchangeChange{Tenant: env.Demo.TenantID, User: alice, Mailbox: bob, FullAccess: ptr(true)}))

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

// addDemoAccount adds the account name to env's config: a copy of the demo
// user's account changed by edit, and reloads env.Config so env.SignIn
// knows it.
func addDemoAccount(t *testing.T, env *demo.Env, name string, edit func(section string) string) {
	t.Helper()
	raw, err := os.ReadFile(env.ConfigFile)
	must(t, err)
	cfg := string(raw)
	head := "[accounts." + demo.UserAccount + "]\n"
	start := strings.Index(cfg, head)
	end := strings.Index(cfg, "[accounts."+demo.AppAccount+"]\n")
	if start < 0 || end < start {
		t.Fatalf("demo config has no %q before the app's account:\n%s", head, cfg)
	}
	sec := edit("[accounts." + name + "]\n" + cfg[start+len(head):end])
	must(t, os.WriteFile(env.ConfigFile, []byte(cfg+"\n"+sec), 0o600))
	env.Config, err = config.Load(env.ConfigFile)
	must(t, err)
}

// TestSASLOverride checks the per-account sasl key: "oauthbearer" against
// Exchange (XOAUTH2 only) fails before sending a token, saying what the
// server offers; once the server offers OAUTHBEARER (Gmail- or Dovecot-like)
// it is used instead of the default XOAUTH2.
func TestSASLOverride(t *testing.T) {
	env := startDemoEnv(t, false)
	addDemoAccount(t, env, "bearer", func(sec string) string { return sec + "sasl = \"oauthbearer\"\n" })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, env.SignIn(ctx, "bearer"))
	must(t, env.SignIn(ctx, demo.UserAccount))

	code, out, errOut := runCLI(t, env.ConfigFile, "", "check", "bearer", "--imap", "--pop3", "--smtp")
	if code != ExitError {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitError, out, errOut)
	}
	if n := strings.Count(out, "error: server does not offer OAUTHBEARER (offers "); n != 3 {
		t.Errorf("%d protocols say the server does not offer OAUTHBEARER, want 3:\n%s", n, out)
	}
	if n := strings.Count(out, `hint: the account asks for OAUTHBEARER (its sasl setting) but this server offers XOAUTH2: set sasl = "auto" or "xoauth2"`); n != 3 {
		t.Errorf("%d protocols hint at the sasl setting, want 3:\n%s", n, out)
	}

	env.Exchange.SetOAuthBearer(true)
	t.Cleanup(func() { env.Exchange.SetOAuthBearer(false) })
	code, out, errOut = runCLI(t, env.ConfigFile, "", "check", "bearer", "--imap", "--pop3", "--smtp")
	if code != ExitOK {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitOK, out, errOut)
	}
	if n := strings.Count(out, "logged in with OAUTHBEARER as "+env.User); n != 3 {
		t.Errorf("%d protocols logged in with OAUTHBEARER, want 3:\n%s", n, out)
	}
	// The demo account, with no sasl key, still picks XOAUTH2 when both are offered.
	code, out, _ = runCLI(t, env.ConfigFile, "", "check", "demo", "--imap")
	if code != ExitOK || !strings.Contains(out, "logged in with XOAUTH2") {
		t.Errorf("default mechanism with both offered: exit %d\n%s", code, out)
	}
}

// TestCheckServerStopsAnswering checks that `mailoauth check` ends a
// protocol whose server greets and then goes silent (checkTimeout) and
// says the time ran out.
func TestCheckServerStopsAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n")
			t.Cleanup(func() { c.Close() }) // held open, never answering
		}
	}()
	env := startDemoEnv(t, false)
	addDemoAccount(t, env, "stuck", func(sec string) string {
		return regexp.MustCompile(`(?m)^imap = .*$`).ReplaceAllString(sec, `imap = "imap+insecure://`+ln.Addr().String()+`"`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, env.SignIn(ctx, "stuck"))
	old := checkTimeout
	checkTimeout = time.Second
	t.Cleanup(func() { checkTimeout = old })

	code, out, errOut := runCLI(t, env.ConfigFile, "", "check", "stuck", "--imap")
	if code != ExitError {
		t.Errorf("exit code %d, want %d\nstderr:\n%s", code, ExitError, errOut)
	}
	for _, w := range []string{"FAIL authenticate", "context deadline exceeded", "hint: the server stopped answering"} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
}
