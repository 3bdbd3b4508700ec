package proxy

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/mailclient"
)

// dovecotProxy is a proxy listener in front of a real Dovecot.
type dovecotProxy struct {
	addr     string
	mu       sync.Mutex
	rejected []string
}

func (p *dovecotProxy) rejections() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.rejected...)
}

func startDovecotProxy(t *testing.T, dv *dovecot.Server, proto, upstreamScheme, localTLS string, local *tls.Config, token, mech string) *dovecotProxy {
	t.Helper()
	up, err := mailclient.ParseURL(dv.URL(upstreamScheme))
	if err != nil {
		t.Fatal(err)
	}
	upTLS, err := mailclient.TLSConfig(dv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	p := &dovecotProxy{}
	logs := &syncBuffer{}
	srv, err := New(Config{
		Protocol:  proto,
		Accounts:  []Account{{Name: "work", Email: testEmail, Upstream: up, UpstreamTLS: upTLS, Mechanism: mech}},
		TLS:       localTLS,
		TLSConfig: local,
		Token:     func(context.Context, string, string) (string, error) { return token, nil },
		Passwords: testPasswords(t),
		Rejected: func(_ context.Context, account, _ string, err error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.rejected = append(p.rejected, account)
		},
		Delay:  func(context.Context, time.Duration) error { return nil },
		Logger: slogTo(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), testPass) {
			t.Errorf("secret in the proxy log:\n%s", logs.String())
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	})
	return p
}

// TestIntegrationDovecot puts the proxy between real password-only clients
// (curl, Python's imaplib/poplib/smtplib) and a real Dovecot that takes
// only OAuth tokens (JWTs the test mints): IMAP, POP3 and SMTP, upstream
// over implicit TLS and over STARTTLS, locally in plain text and with
// STARTTLS; then a token Dovecot refuses must fail the client fast.
func TestIntegrationDovecot(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	curl := lookPath(t, "curl")
	dv := dovecot.Start(t, dovecot.Options{})
	for i := 1; i <= 2; i++ {
		dv.Deliver(t, "bob@example.test", testEmail, []byte(fmt.Sprintf(
			"From: Bob <bob@example.test>\r\nTo: %s\r\nSubject: fixture %d\r\nMessage-ID: <fixture-%d@example.test>\r\n\r\nbody %d\r\n", testEmail, i, i, i)))
	}
	good := dv.Token(t, testEmail, jose.RS256, time.Hour)
	expired := dv.Token(t, testEmail, jose.RS256, -time.Minute)
	local, _ := testCert(t)
	caFile := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: local.Certificates[0].Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	user := testEmail + ":" + testPass

	type run struct{ proto, upstream, local string }
	var runs []run
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		for _, up := range []string{proto + "s", proto} {
			for _, loc := range []string{TLSNone, TLSStartTLS} {
				runs = append(runs, run{proto, up, loc})
			}
		}
	}
	for _, r := range runs {
		t.Run("curl/"+r.upstream+"/local-"+r.local, func(t *testing.T) {
			p := startDovecotProxy(t, dv, r.proto, r.upstream, r.local, local, good, "")
			args := []string{"-sS", "--max-time", "20", "--user", user}
			if r.local == TLSStartTLS {
				args = append(args, "--ssl-reqd", "--cacert", caFile)
			}
			var want string
			switch r.proto {
			case "imap":
				args = append(args, "imap://"+p.addr+"/INBOX;UID=1")
				want = "Subject: fixture 1"
			case "pop3":
				args = append(args, "pop3://"+p.addr+"/2")
				want = "Subject: fixture 2"
			case "smtp":
				subject := "via proxy " + r.upstream + " " + r.local
				msg := filepath.Join(t.TempDir(), "msg")
				os.WriteFile(msg, []byte("From: "+testEmail+"\r\nTo: bob@example.test\r\nSubject: "+subject+"\r\n\r\nhello\r\n"), 0o600)
				args = append(args, "smtp://"+p.addr, "--mail-from", testEmail, "--mail-rcpt", "bob@example.test", "-T", msg)
				want = subject
			}
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl %v: %v\n%s\ndovecot log:\n%s", args, err, out, dv.Log())
			}
			got := string(out)
			if r.proto == "smtp" {
				got = ""
				for _, m := range dv.Relayed(t) {
					got += string(m)
				}
			}
			if !strings.Contains(got, want) {
				t.Errorf("%q not in:\n%s", want, got)
			}
		})
	}

	t.Run("curl/imap/OAUTHBEARER", func(t *testing.T) {
		p := startDovecotProxy(t, dv, "imap", "imaps", TLSNone, nil, good, "OAUTHBEARER")
		out, err := exec.Command(curl, "-sS", "--max-time", "20", "--user", user, "imap://"+p.addr+"/INBOX;UID=2").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Subject: fixture 2") {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		if !strings.Contains(dv.Log(), "method=OAUTHBEARER") {
			t.Error("Dovecot did not see an OAUTHBEARER login")
		}
	})

	t.Run("python", func(t *testing.T) {
		py := lookPath(t, "python3")
		for _, loc := range []string{TLSNone, TLSStartTLS} {
			t.Run("local-"+loc, func(t *testing.T) {
				imapP := startDovecotProxy(t, dv, "imap", "imaps", loc, local, good, "")
				popP := startDovecotProxy(t, dv, "pop3", "pop3", loc, local, good, "")
				smtpP := startDovecotProxy(t, dv, "smtp", "smtps", loc, local, good, "")
				cmd := exec.Command(py, "-c", pythonClients)
				cmd.Env = append(os.Environ(), "IMAP="+imapP.addr, "POP="+popP.addr, "SMTP="+smtpP.addr,
					"EMAIL="+testEmail, "PASS="+testPass, "STARTTLS="+fmt.Sprint(loc == TLSStartTLS), "CA="+caFile)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("python: %v\n%s", err, out)
				}
				for _, want := range []string{"imap OK fixture 1", "imap AUTHENTICATE PLAIN OK AUTH", "pop3 OK 2 messages", "smtp PLAIN OK", "smtp LOGIN OK", "imap wrong password refused", "pop3 wrong password refused", "smtp wrong password refused"} {
					if !strings.Contains(string(out), want) {
						t.Errorf("%q not in python output:\n%s", want, out)
					}
				}
			})
		}
	})

	t.Run("rejected token fails fast", func(t *testing.T) {
		for _, proto := range []string{"imap", "pop3", "smtp"} {
			t.Run(proto, func(t *testing.T) {
				p := startDovecotProxy(t, dv, proto, proto+"s", TLSNone, nil, expired, "")
				url := map[string]string{"imap": "imap://" + p.addr + "/INBOX", "pop3": "pop3://" + p.addr + "/", "smtp": "smtp://" + p.addr}[proto]
				args := []string{"-sS", "--max-time", "30", "--user", user, url}
				if proto == "smtp" {
					args = append(args, "--mail-from", testEmail, "--mail-rcpt", "bob@example.test", "-T", "/dev/null")
				}
				start := time.Now()
				out, err := exec.Command(curl, args...).CombinedOutput()
				took := time.Since(start)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 67 {
					t.Errorf("curl = %v, want exit 67 (login denied)\n%s", err, out)
				}
				if took > 5*time.Second {
					t.Errorf("the client waited %v for the failure", took)
				}
				if got := p.rejections(); len(got) != 1 || got[0] != "work" {
					t.Errorf("Rejected calls = %v, want [work]", got)
				}
				if strings.Contains(dv.Log(), "didn't finish SASL auth") {
					t.Error("Dovecot says the proxy left the error challenge unanswered")
				}
			})
		}
	})
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this integration test: %v", name, err)
	}
	return p
}

// pythonClients logs in through the proxies with the standard library's
// mail clients, as password-only scripts do.
const pythonClients = `
import imaplib, poplib, smtplib, ssl, os
email, pw, starttls = os.environ["EMAIL"], os.environ["PASS"], os.environ["STARTTLS"] == "true"
ctx = ssl.create_default_context(cafile=os.environ["CA"])
def hp(v):
    h, p = v.rsplit(":", 1)
    return h, int(p)

h, p = hp(os.environ["IMAP"])
m = imaplib.IMAP4(h, p)
if starttls: m.starttls(ssl_context=ctx)
try:
    m.login(email, "wrong")
except imaplib.IMAP4.error:
    print("imap wrong password refused")
m.login(email, pw)
m.select("INBOX", readonly=True)
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("imap", typ, data[0][1].decode().strip().split(": ", 1)[1])
m.logout()

# AUTHENTICATE PLAIN without an initial response: the answer follows a
# "+" continuation (imaplib does not use SASL-IR; curl does).
m = imaplib.IMAP4(h, p)
if starttls: m.starttls(ssl_context=ctx)
typ, _ = m.authenticate("PLAIN", lambda _: ("\0" + email + "\0" + pw).encode())
print("imap AUTHENTICATE PLAIN", typ, m.state)
m.logout()

h, p = hp(os.environ["POP"])
m = poplib.POP3(h, p)
if starttls: m.stls(context=ctx)
m.user(email)
try:
    m.pass_("wrong")
except poplib.error_proto:
    print("pop3 wrong password refused")
m.user(email)
m.pass_(pw)
n, size = m.stat()
print("pop3 OK", n, "messages")
m.quit()

h, p = hp(os.environ["SMTP"])
for mech in ("PLAIN", "LOGIN"):
    s = smtplib.SMTP(h, p)
    s.ehlo()
    if starttls:
        s.starttls(context=ctx)
        s.ehlo()
    if mech == "PLAIN":
        try:
            s.login(email, "wrong")
        except smtplib.SMTPAuthenticationError:
            print("smtp wrong password refused")
    s.user, s.password = email, pw
    s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=False)
    s.sendmail(email, ["bob@example.test"], "Subject: python " + mech + "\r\n\r\nhi\r\n")
    print("smtp", mech, "OK")
    s.quit()
`
