package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

const (
	doveUser = "alice@example.test"
	doveBob  = "bob@example.test"
)

// doveAccount is one [accounts.NAME] of a config pointing at Dovecot.
type doveAccount struct {
	name, imap, pop3, smtp, sasl string
	token                        string // the access token seeded into the store
}

// writeDoveConfig writes a config whose accounts use srv, and seeds the
// token store with each account's token the way a login would
// (tokens.SaveLogin), so every command reads it from the store. The store
// key goes in a key file beside the store: the OS keyring is never used.
func writeDoveConfig(t *testing.T, srv *dovecot.Server, accts []doveAccount) string {
	t.Helper()
	dir := t.TempDir()
	storePath := filepath.Join(dir, "state", "tokens.db")
	var b strings.Builder
	fmt.Fprintf(&b, "store = %s\n", strconv.Quote("sqlite:"+storePath))
	for _, a := range accts {
		fmt.Fprintf(&b, "\n[accounts.%s]\nprovider = \"oidc\"\nissuer = %s\nclient_id = \"mailoauth-test\"\n"+
			"scopes = [\"openid\", \"email\"]\nemail = %s\nca_file = %s\n",
			a.name, strconv.Quote(srv.Issuer), strconv.Quote(doveUser), strconv.Quote(srv.CAFile))
		for key, v := range map[string]string{"imap": a.imap, "pop3": a.pop3, "smtp": a.smtp, "sasl": a.sasl} {
			if v != "" {
				fmt.Fprintf(&b, "%s = %s\n", key, strconv.Quote(v))
			}
		}
	}
	cfgFile := filepath.Join(dir, "config.toml")
	must(t, os.WriteFile(cfgFile, []byte(b.String()), 0o600))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := tokens.Open(ctx, "sqlite:"+storePath, &tokens.Options{NoKeyring: true, KeyFile: storePath + ".key", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, a := range accts {
		// The JWT's own exp is Dovecot's business; the client goes by the
		// expiry the token endpoint would have sent (expires_in).
		tok := &oauth.Token{AccessToken: a.token, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour), Scope: []string{"openid", "email"}}
		must(t, tokens.SaveLogin(ctx, st, a.name, "mail", tok))
	}
	return cfgFile
}

// TestIntegrationCheckSendDovecot runs `mailoauth check` and `mailoauth
// send` against a real Dovecot 2.3 that validates the stored tokens as
// JWTs: IMAP, POP3 and submission, over implicit TLS and STARTTLS, with
// XOAUTH2 (chosen) and OAUTHBEARER (asked for by the account's sasl key);
// an expired token fails with Dovecot's JSON challenge status.
func TestIntegrationCheckSendDovecot(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	srv := dovecot.Start(t, dovecot.Options{})
	srv.Deliver(t, doveBob, doveUser, []byte("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: fixture\r\n"+
		"Message-ID: <fixture@example.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"))
	good := srv.Token(t, doveUser, jose.RS256, time.Hour)
	goodPS := srv.Token(t, doveUser, jose.PS256, time.Hour)
	expired := srv.Token(t, doveUser, jose.RS256, -time.Hour)
	cfg := writeDoveConfig(t, srv, []doveAccount{
		{name: "tls", imap: srv.URL("imaps"), pop3: srv.URL("pop3s"), smtp: srv.URL("smtps"), token: good},
		{name: "starttls", imap: srv.URL("imap"), pop3: srv.URL("pop3"), smtp: srv.URL("smtp"), token: good},
		{name: "bearer", imap: srv.URL("imap"), pop3: srv.URL("pop3s"), smtp: srv.URL("smtp"), sasl: "oauthbearer", token: goodPS},
		{name: "expired", imap: srv.URL("imaps"), pop3: srv.URL("pop3"), smtp: srv.URL("smtp"), token: expired},
	})

	for _, tt := range []struct {
		account string
		want    []string
	}{
		{"tls", []string{"IMAP imaps://", "POP3 pop3s://", "SMTP smtps://", "ok   tls", "logged in with XOAUTH2 as alice@example.test", "INBOX has 1 messages"}},
		{"starttls", []string{"IMAP imap://", "POP3 pop3://", "SMTP smtp://", "ok   starttls", "logged in with XOAUTH2 as alice@example.test"}},
		{"bearer", []string{"logged in with OAUTHBEARER as alice@example.test"}},
	} {
		t.Run("check/"+tt.account, func(t *testing.T) {
			code, out, errOut := runCLI(t, cfg, "", "check", tt.account, "--recent", "1")
			if code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\ndovecot log:\n%s", code, out, errOut, srv.Log())
			}
			for _, w := range append(tt.want, "  fixture\n") {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if strings.Count(out, "ok   authenticate") != 3 {
				t.Errorf("want 3 logins:\n%s", out)
			}
		})
	}
	t.Run("check/expired", func(t *testing.T) {
		code, out, _ := runCLI(t, cfg, "", "check", "expired")
		if code != ExitError {
			t.Errorf("exit %d, want %d", code, ExitError)
		}
		if n := strings.Count(out, "FAIL authenticate"); n != 3 {
			t.Errorf("%d failed logins, want 3:\n%s", n, out)
		}
		// Dovecot's challenge {"status":"401","schemes":"bearer","scope":"mail"}
		// for IMAP, POP3 and SMTP.
		if n := strings.Count(out, "oauth status: 401"); n != 3 {
			t.Errorf("%d reports carry the challenge status, want 3:\n%s", n, out)
		}
		if !strings.Contains(out, "hint: the server rejected the token") {
			t.Errorf("no hint:\n%s", out)
		}
	})

	for _, account := range []string{"tls", "starttls", "bearer"} {
		t.Run("send/"+account, func(t *testing.T) {
			subject := "via " + account + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
			code, out, errOut := runCLI(t, cfg, "Hello from the integration test.\n", "send", account, "--to", doveBob, "--subject", subject)
			if code != ExitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\ndovecot log:\n%s", code, out, errOut, srv.Log())
			}
			relayedHas(t, srv, subject)
		})
	}
}

// relayedHas fails unless Dovecot relayed a message with this subject.
func relayedHas(t *testing.T, srv *dovecot.Server, subject string) {
	t.Helper()
	for _, m := range srv.Relayed(t) {
		if bytes.Contains(m, []byte("Subject: "+subject+"\n")) {
			return
		}
	}
	t.Errorf("Dovecot relayed no message with subject %q", subject)
}

// buildMailoauth builds the mailoauth binary once for the real-client
// tests.
func buildMailoauth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mailoauth")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mailoauth/mailoauth/cmd/mailoauth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestIntegrationRealClients runs the README's recipes: curl and msmtp log
// in to a real Dovecot with the token `mailoauth token` prints from the
// store. curl speaks OAUTHBEARER whenever the server offers it, so an
// XOAUTH2-only Dovecot (like Exchange) covers its XOAUTH2 path.
func TestIntegrationRealClients(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	for _, tool := range []string{"curl", "msmtp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: run .ci/setup.d/45-mail-clients.sh as root", tool)
		}
	}
	bin := buildMailoauth(t)
	both := dovecot.Start(t, dovecot.Options{})
	xo := dovecot.Start(t, dovecot.Options{Mechanisms: []string{"xoauth2"}})
	for _, srv := range []*dovecot.Server{both, xo} {
		srv.Deliver(t, doveBob, doveUser, []byte("From: bob@example.test\r\nTo: alice@example.test\r\nSubject: fixture\r\n\r\nbody\r\n"))
	}
	cfgBoth := writeDoveConfig(t, both, []doveAccount{{name: "alice", imap: both.URL("imaps"), token: both.Token(t, doveUser, jose.RS256, time.Hour)}})
	cfgXO := writeDoveConfig(t, xo, []doveAccount{{name: "alice", imap: xo.URL("imaps"), token: xo.Token(t, doveUser, jose.RS256, time.Hour)}})

	// run runs a shell command line (the recipe as a user types it) with
	// $MAILOAUTH set to the binary and the config chosen by
	// MAILOAUTH_CONFIG.
	run := func(t *testing.T, cfg, script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", script)
		cmd.Env = append(os.Environ(), "MAILOAUTH="+bin, "MAILOAUTH_CONFIG="+cfg, "MAILOAUTH_STATE_DIR="+t.TempDir())
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out.String(), errOut.String())
		}
		return out.String()
	}
	hostPort := func(u string) string { return u[strings.Index(u, "://")+3:] }

	for _, c := range []struct {
		name string
		srv  *dovecot.Server
		cfg  string
	}{{"oauthbearer", both, cfgBoth}, {"xoauth2", xo, cfgXO}} {
		srv := c.srv
		t.Run("curl/"+c.name+"/imaps", func(t *testing.T) {
			out := run(t, c.cfg, fmt.Sprintf(`curl -sS --cacert %s 'imaps://%s/INBOX?ALL' -u '%s:' --oauth2-bearer "$($MAILOAUTH token alice)"`,
				srv.CAFile, hostPort(srv.URL("imaps")), doveUser))
			if !strings.Contains(out, "* SEARCH 1") {
				t.Errorf("curl imaps output %q, want the SEARCH answer", out)
			}
		})
		t.Run("curl/"+c.name+"/pop3-starttls", func(t *testing.T) {
			out := run(t, c.cfg, fmt.Sprintf(`curl -sS --ssl-reqd --cacert %s 'pop3://%s/' -u '%s:' --oauth2-bearer "$($MAILOAUTH token alice --resource pop)"`,
				srv.CAFile, hostPort(srv.URL("pop3")), doveUser))
			if !strings.HasPrefix(out, "1 ") {
				t.Errorf("curl pop3 output %q, want the LIST answer", out)
			}
		})
		t.Run("curl/"+c.name+"/smtp-starttls", func(t *testing.T) {
			subject := "curl " + c.name + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
			msg := filepath.Join(t.TempDir(), "msg.eml")
			must(t, os.WriteFile(msg, []byte("From: "+doveUser+"\r\nTo: "+doveBob+"\r\nSubject: "+subject+"\r\n\r\nsent by curl\r\n"), 0o600))
			run(t, c.cfg, fmt.Sprintf(`curl -sS --ssl-reqd --cacert %s 'smtp://%s' --mail-from %s --mail-rcpt %s -u '%s:' --oauth2-bearer "$($MAILOAUTH token alice --resource smtp)" -T %s`,
				srv.CAFile, hostPort(srv.URL("smtp")), doveUser, doveBob, doveUser, msg))
			relayedHas(t, srv, subject)
		})
	}

	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run("msmtp/"+mech, func(t *testing.T) {
			dir := t.TempDir()
			rc := filepath.Join(dir, "msmtprc")
			port := hostPort(both.URL("smtp"))[len("127.0.0.1:"):]
			must(t, os.WriteFile(rc, []byte(fmt.Sprintf(`defaults
tls_trust_file %s
logfile %s

account alice
host 127.0.0.1
port %s
tls on
tls_starttls on
auth %s
user %s
from %s
passwordeval "%s --config %s token alice --resource smtp"
`, both.CAFile, filepath.Join(dir, "msmtp.log"), port, mech, doveUser, doveUser, bin, cfgBoth)), 0o600))
			subject := "msmtp " + mech + " " + strconv.FormatInt(time.Now().UnixNano(), 36)
			run(t, cfgBoth, fmt.Sprintf(`printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nsent by msmtp\r\n' | msmtp -C %s -a alice %s`,
				doveUser, doveBob, subject, rc, doveBob))
			relayedHas(t, both, subject)
			if log, _ := os.ReadFile(filepath.Join(dir, "msmtp.log")); !bytes.Contains(log, []byte("exitcode=EX_OK")) {
				t.Errorf("msmtp log:\n%s", log)
			}
		})
	}
}
