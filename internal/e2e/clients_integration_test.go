package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
)

// The real mail clients of docs/mail-clients.md, run by
// TestIntegrationChain against its introspecting Dovecot.

// realClients runs the recipes of docs/mail-clients.md: real mail clients
// logging in with what `mailoauth token` (the binary bin) prints.
func (c *chain) realClients(t *testing.T, bin string) {
	py := pythonClients(t, c, bin)
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		for _, sec := range []string{"tls", "starttls"} {
			for _, mech := range []string{"xoauth2", "oauthbearer"} {
				t.Run("python/"+proto+"/"+sec+"/"+mech, func(t *testing.T) {
					var extra []string
					if proto == "smtp" {
						extra = []string{bob, uniq("python " + sec + " " + mech)}
					}
					var res pyResult
					var raw string
					loggedIn(t, c.mail, map[string]string{"imap": "imap", "pop3": "pop3", "smtp": "submission"}[proto], mech, func() {
						res, raw = py(t, proto, sec, mech, extra...)
					})
					if !res.OK {
						t.Fatalf("python %s login refused: %s\ndovecot log:\n%s", proto, raw, c.mail.Log())
					}
					want := map[string]string{"imap": "INBOX has 1 messages", "pop3": "mailbox has 1 messages", "smtp": "sent to " + bob}[proto]
					if res.Detail != want {
						t.Errorf("python says %q, want %q", res.Detail, want)
					}
					if proto == "smtp" {
						relayedHas(t, c.mail, extra[1])
					}
				})
			}
		}
	}
	// curl reading its options from stdin (-K -), so the token never
	// appears in a process's argv.
	t.Run("curl/config-stdin", func(t *testing.T) {
		needTool(t, "curl")
		out := shell(t, c.cfgTLS, bin, fmt.Sprintf(`"$MAILOAUTH" token alice | sed 's/^/oauth2-bearer = /' | curl -sS --cacert %s -K - '%s/INBOX?ALL' -u '%s:'`,
			c.mail.CAFile, c.mail.URL("imaps"), alice))
		if !strings.Contains(out, "* SEARCH 1") {
			t.Errorf("curl output %q, want the SEARCH answer", out)
		}
	})

	// mpop: passwordeval runs `mailoauth token`, auth xoauth2 and
	// oauthbearer, STARTTLS and TLS; it downloads the fixture and keeps it.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "pop3"}, {"oauthbearer", "pop3s"}} {
		t.Run("mpop/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "mpop")
			dir := t.TempDir()
			rc := filepath.Join(dir, "mpoprc")
			starttls := map[string]string{"pop3": "on", "pop3s": "off"}[tt.url]
			writeFile(t, rc, fmt.Sprintf(`defaults
tls on
tls_starttls %s
tls_trust_file %s
keep on
uidls_file %s
delivery mbox %s

account alice
host 127.0.0.1
port %s
auth %s
user %s
passwordeval "%s --config %s token alice --resource pop"
`, starttls, c.mail.CAFile, filepath.Join(dir, "uidls"), filepath.Join(dir, "mbox"), port(c.mail.URL(tt.url)), tt.mech, alice, bin, c.cfgTLS))
			loggedIn(t, c.mail, "pop3", tt.mech, func() { shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s mpop -C %s alice`, dir, rc)) })
			if mbox, _ := os.ReadFile(filepath.Join(dir, "mbox")); !bytes.Contains(mbox, []byte("Subject: fixture one")) {
				t.Errorf("mpop delivered:\n%s", mbox)
			}
		})
	}
	// neomutt sends in batch mode (no terminal needed) over submission,
	// fetching the token with smtp_oauth_refresh_command.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "smtp"}, {"oauthbearer", "smtps"}} {
		t.Run("neomutt/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "neomutt")
			dir := t.TempDir()
			rc := filepath.Join(dir, "neomuttrc")
			writeFile(t, rc, fmt.Sprintf(`set from = "%s"
set use_from = yes
set smtp_url = "%s://%s@%s/"
set smtp_authenticators = "%s"
set smtp_oauth_refresh_command = "%s --config %s token alice --resource smtp"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_ca_certificates_file = "%s"
set record = ""
set header_cache = ""
set message_cachedir = ""
`, alice, tt.url, alice, strings.TrimPrefix(c.mail.URL(tt.url), tt.url+"://"), tt.mech, bin, c.cfgTLS, c.mail.CAFile))
			subject := uniq("neomutt " + tt.mech)
			loggedIn(t, c.mail, "submission", tt.mech, func() {
				shell(t, c.cfgTLS, bin, fmt.Sprintf(`echo 'Sent by neomutt.' | HOME=%s neomutt -n -F %s -s '%s' -- %s`, dir, rc, subject, bob))
			})
			relayedHas(t, c.mail, subject)
		})
	}

	// neomutt reading INBOX over IMAP with imap_oauth_refresh_command needs
	// a terminal: script(1) gives it a pty, and it quits at once.
	for _, tt := range []struct{ mech, url string }{{"xoauth2", "imaps"}, {"oauthbearer", "imap"}} {
		t.Run("neomutt-imap/"+tt.mech+"/"+tt.url, func(t *testing.T) {
			needTool(t, "neomutt")
			needTool(t, "script")
			dir := t.TempDir()
			rc := filepath.Join(dir, "neomuttrc")
			writeFile(t, rc, fmt.Sprintf(`set imap_user = "%s"
set imap_authenticators = "%s"
set imap_oauth_refresh_command = "%s --config %s token alice"
set folder = "%s/"
set spoolfile = "+INBOX"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_ca_certificates_file = "%s"
set record = ""
set header_cache = ""
set message_cachedir = ""
`, alice, tt.mech, bin, c.cfgTLS, c.mail.URL(tt.url), c.mail.CAFile))
			loggedIn(t, c.mail, "imap", tt.mech, func() {
				shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s TERM=xterm timeout 30 script -qec "neomutt -n -F %s -e 'push <quit>'" /dev/null > %s`,
					dir, rc, filepath.Join(dir, "screen")))
			})
			// The index's status line counts INBOX's one message.
			if screen, _ := os.ReadFile(filepath.Join(dir, "screen")); !bytes.Contains(screen, []byte("Msgs:1")) {
				t.Errorf("neomutt's screen lacks the INBOX count:\n%q", screen)
			}
		})
	}

	// mbsync: PassCmd runs `mailoauth token`; XOAUTH2 comes from Cyrus
	// SASL's kdexoauth2 plugin (there is no OAUTHBEARER plugin in Debian).
	// isync 1.4 matches certificates by DNS name only, and "localhost" may
	// resolve to ::1 first, so TLS to 127.0.0.1 goes through a Tunnel of
	// openssl s_client verifying the server's IP address instead of
	// mbsync's own Host/SSLType (the recipe's part under test is PassCmd
	// and AuthMechs XOAUTH2).
	t.Run("mbsync/xoauth2", func(t *testing.T) {
		needTool(t, "mbsync")
		needTool(t, "openssl")
		dir := t.TempDir()
		rc := filepath.Join(dir, "mbsyncrc")
		maildir := filepath.Join(dir, "mail")
		if err := os.Mkdir(maildir, 0o700); err != nil { // mbsync creates INBOX, not the store's root
			t.Fatal(err)
		}
		writeFile(t, rc, fmt.Sprintf(`IMAPAccount alice
Tunnel "openssl s_client -quiet -verify_quiet -verify_return_error -CAfile %s -verify_ip 127.0.0.1 -connect 127.0.0.1:%s"
User %s
PassCmd "%s --config %s token alice"
AuthMechs XOAUTH2
SSLType None

IMAPStore alice-remote
Account alice

MaildirStore alice-local
Path %s/
Inbox %s/INBOX

Channel alice
Far :alice-remote:
Near :alice-local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`, c.mail.CAFile, port(c.mail.URL("imaps")), alice, bin, c.cfgTLS, maildir, maildir))
		loggedIn(t, c.mail, "imap", "xoauth2", func() { shell(t, c.cfgTLS, bin, fmt.Sprintf(`HOME=%s mbsync -c %s alice`, dir, rc)) })
		files, _ := filepath.Glob(filepath.Join(maildir, "INBOX", "*", "*"))
		found := false
		for _, f := range files {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("Subject: fixture one")) {
				found = true
			}
		}
		if !found {
			t.Errorf("mbsync did not sync the fixture into %s (%d files)", maildir, len(files))
		}
	})
}

// buildMailoauth builds the CLI for the real clients to run.
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

// clientEnv is the environment the real clients run in: $MAILOAUTH is the
// binary, MAILOAUTH_CONFIG the config (MAILOAUTH_STATE_DIR is inherited).
func clientEnv(cfg, bin string) []string {
	return append(os.Environ(), "MAILOAUTH="+bin, "MAILOAUTH_CONFIG="+cfg)
}

// shell runs a recipe line with sh -c and returns its stdout.
func shell(t *testing.T, cfg, bin, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = clientEnv(cfg, bin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out.String(), errOut.String())
	}
	return out.String()
}

// pyResult is what testdata/pyclients.py prints.
type pyResult struct {
	OK        bool           `json:"ok"`
	Detail    string         `json:"detail"`
	Reply     string         `json:"reply"`
	Challenge map[string]any `json:"challenge"`
}

// pythonClients returns a runner of testdata/pyclients.py: Python's
// imaplib, poplib or smtplib logging in to c's Dovecot with the SASL
// initial response `mailoauth token alice --sasl MECH` prints.
func pythonClients(t *testing.T, c *chain, bin string) func(t *testing.T, proto, sec, mech string, extra ...string) (pyResult, string) {
	t.Helper()
	// Debian's interpreter first: a version manager's shim (pyenv) costs
	// a second per start.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Fatalf("python3 missing: run .ci/setup.d/46-python-clients.sh as root")
		}
	}
	script, err := filepath.Abs(filepath.Join("testdata", "pyclients.py"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"imap/tls": c.mail.IMAPS, "imap/starttls": c.mail.IMAP, "pop3/tls": c.mail.POP3S,
		"pop3/starttls": c.mail.POP3, "smtp/tls": c.mail.Submissions, "smtp/starttls": c.mail.Submission}
	return func(t *testing.T, proto, sec, mech string, extra ...string) (pyResult, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{script, proto, sec, mech, c.mail.Host, strconv.Itoa(ports[proto+"/"+sec]), c.mail.CAFile, "alice"}, extra...)
		cmd := exec.CommandContext(ctx, python, args...)
		cmd.Env = clientEnv(c.cfgTLS, bin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var res pyResult
		if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
			t.Fatalf("pyclients.py %s: %v, %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args[1:], " "), err, jerr, out.String(), errOut.String())
		}
		var ee *exec.ExitError
		if res.OK != (err == nil) || (err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1)) {
			t.Fatalf("pyclients.py exit %v with ok=%v\nstderr:\n%s", err, res.OK, errOut.String())
		}
		return res, strings.TrimSpace(out.String())
	}
}

// needTool fails t when a client is not installed (CI must not pass by
// skipping).
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s missing: run .ci/setup.d/45-mail-clients.sh and 46-python-clients.sh as root", name)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// port is the port of a server URL.
func port(u string) string { return u[strings.LastIndex(u, ":")+1:] }

// loggedIn fails t unless Dovecot logged a new login of alice with mech
// on service (imap, pop3, submission) while do ran: the client really
// used the mechanism it was told to.
func loggedIn(t *testing.T, mail *dovecot.Server, service, mech string, do func()) {
	t.Helper()
	line := service + "-login: Info: Login: user=<" + alice + ">, method=" + strings.ToUpper(mech) + ","
	before := strings.Count(mail.Log(), line)
	do()
	if t.Failed() {
		return
	}
	if after := strings.Count(mail.Log(), line); after <= before {
		t.Errorf("Dovecot logged no new %q", line)
	}
}
