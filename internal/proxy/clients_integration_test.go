package proxy

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
)

// TestIntegrationClients reads a Dovecot mailbox end to end with real
// password-only mail clients through the proxy, which logs in upstream
// with an OAuth token: fetchmail over IMAP (with local STARTTLS) and over
// POP3, and neomutt over IMAP (plain and local STARTTLS; under script(1)
// for the terminal it needs, quitting at once).
func TestIntegrationClients(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	dv := dovecot.Start(t, dovecot.Options{})
	for i := 1; i <= 3; i++ {
		dv.Deliver(t, "bob@example.test", testEmail, []byte(fmt.Sprintf(
			"From: Bob <bob@example.test>\r\nTo: %s\r\nSubject: client fixture %d\r\nMessage-ID: <client-%d@example.test>\r\n\r\nbody %d\r\n", testEmail, i, i, i)))
	}
	good := dv.Token(t, testEmail, jose.RS256, time.Hour)
	local, _ := testCert(t)
	caFile := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: local.Certificates[0].Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct{ proto, local string }{{"imap", TLSStartTLS}, {"imap", TLSNone}, {"pop3", TLSNone}} {
		t.Run("fetchmail/"+tt.proto+"/local-"+tt.local, func(t *testing.T) {
			fetchmail := lookPath(t, "fetchmail")
			p := startDovecotProxy(t, dv, tt.proto, tt.proto+"s", tt.local, local, good, "")
			host, port, _ := strings.Cut(p.addr, ":")
			dir := t.TempDir()
			mbox := filepath.Join(dir, "mbox")
			tls := "sslproto ''" // plain text to the loopback proxy
			if tt.local == TLSStartTLS {
				// fetchmail matches DNS names only: the proxy certificate names
				// localhost (and 127.0.0.1 as an IP SAN).
				tls = fmt.Sprintf("sslproto tls1.2+ sslcertck sslcertfile %q sslcommonname localhost", caFile)
			}
			rc := filepath.Join(dir, "fetchmailrc")
			os.WriteFile(rc, []byte(fmt.Sprintf(`set no bouncemail
poll %s service %s protocol %s auth password timeout 20
  user "%s" password "%s" is "%s" here
  %s
  keep fetchall
  mda "/bin/sh -c 'cat >> %s'"
`, host, port, map[string]string{"imap": "IMAP", "pop3": "POP3"}[tt.proto], testEmail, testPass, "root", tls, mbox)), 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, fetchmail, "--fetchmailrc", rc, "--pidfile", filepath.Join(dir, "pid"), "--nosyslog", "-N", "-v")
			cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fetchmail: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(mbox)
			for i := 1; i <= 3; i++ {
				if want := fmt.Sprintf("Subject: client fixture %d", i); !bytes.Contains(got, []byte(want)) {
					t.Errorf("%q not in what fetchmail delivered:\n%s\nfetchmail said:\n%s", want, got, out)
				}
			}
			if strings.Contains(string(out), good) {
				t.Error("the upstream token reached the client")
			}
		})
	}

	for _, loc := range []string{TLSNone, TLSStartTLS} {
		t.Run("neomutt/imap/local-"+loc, func(t *testing.T) {
			lookPath(t, "neomutt")
			script := lookPath(t, "script")
			p := startDovecotProxy(t, dv, "imap", "imaps", loc, local, good, "")
			dir := t.TempDir()
			tlsOpts := "set ssl_starttls = no\nset ssl_force_tls = no\n"
			if loc == TLSStartTLS {
				tlsOpts = fmt.Sprintf("set ssl_starttls = yes\nset ssl_force_tls = yes\nset ssl_ca_certificates_file = %q\n", caFile)
			}
			rc := filepath.Join(dir, "neomuttrc")
			os.WriteFile(rc, []byte(fmt.Sprintf(`set imap_user = "%s"
set imap_pass = "%s"
set folder = "imap://%s/"
set spoolfile = "+INBOX"
%sset record = ""
set header_cache = ""
set message_cachedir = ""
`, testEmail, testPass, p.addr, tlsOpts)), 0o600)
			screen := filepath.Join(dir, "screen")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, script, "-qec", fmt.Sprintf("neomutt -n -F %s -e 'push <quit>'", rc), "/dev/null")
			cmd.Env = append(os.Environ(), "HOME="+dir, "TERM=xterm")
			out, err := cmd.CombinedOutput()
			os.WriteFile(screen, out, 0o600)
			if err != nil {
				t.Fatalf("neomutt: %v\n%q", err, out)
			}
			// The index's status line counts INBOX's three messages.
			if !bytes.Contains(out, []byte("Msgs:3")) {
				t.Errorf("neomutt's screen lacks the INBOX count:\n%q", out)
			}
		})
	}
}
