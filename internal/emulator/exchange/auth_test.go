package exchange

import (
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Exact replies of the three servers (reference §5.2).
const (
	imapOK    = "a1 OK AUTHENTICATE completed."
	imapNO    = "a1 NO AUTHENTICATE failed."
	popOK     = "+OK User successfully authenticated."
	popERR    = "-ERR Authentication failure: unknown user name or bad password."
	smtpOK    = "235 2.7.0 Authentication successful"
	smtp535   = "535 5.7.3 Authentication unsuccessful [EMU0P01MB0001.prod.outlook.com]"
	smtpNoTen = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
	smtpNoBox = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."
)

// imapAuth logs in over IMAPS with a SASL-IR XOAUTH2 and returns the
// tagged reply.
func (e *env) imapAuth(ir string) string {
	e.t.Helper()
	l := e.dialTLS(e.xs.IMAPAddr)
	l.expectPrefix("* OK The Microsoft Exchange IMAP4 service is ready. [")
	l.send("a1 AUTHENTICATE XOAUTH2 " + ir)
	return l.read()
}

// popAuth logs in over POP3S with the two-step AUTH XOAUTH2.
func (e *env) popAuth(ir string) string {
	e.t.Helper()
	l := e.dialTLS(e.xs.POP3Addr)
	l.expectPrefix("+OK The Microsoft Exchange POP3 service is ready. [")
	l.send("AUTH XOAUTH2")
	l.expect("+ ")
	l.send(ir)
	return l.read()
}

// smtpSession opens a submission connection, STARTTLS and EHLO.
func (e *env) smtpTLS() *line {
	e.t.Helper()
	l := e.dial(e.xs.SMTPAddr)
	l.expectPrefix("220 EMU0P01MB0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at ")
	l.send("EHLO client.example")
	l.readUntilPrefix("250 ")
	l.send("STARTTLS")
	l.expectPrefix("220 ")
	l.startTLS(e.tlsConfig())
	l.send("EHLO client.example")
	l.readUntilPrefix("250 ")
	return l
}

// smtpAuth logs in with the one-line AUTH XOAUTH2 form.
func (e *env) smtpAuth(ir string) string {
	e.t.Helper()
	l := e.smtpTLS()
	l.send("AUTH XOAUTH2 " + ir)
	return l.read()
}

// TestAuthMatrix runs every token case against IMAP, POP3 and SMTP and
// checks the exact reply of each server and the reason it logged.
func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	userTok := e.userToken(appPublic, alice, exoScopes)
	bobTok := e.userToken(appPublic, bob, exoScopes)
	graphTok := e.userToken(appPublic, alice, graphScope)
	narrowTok := e.userToken(appNarrow, alice, "https://outlook.office.com/IMAP.AccessAsUser.All")
	noMailTok := e.userToken(appPublic, "nomail@contoso.com", exoScopes)
	appTok := e.appToken(appDaemon, "daemon-secret", "https://outlook.office365.com/.default")
	noSPTok := e.appToken(appNoSP, "daemon-d-secret", "https://outlook.office365.com/.default")
	appGraphTok := e.appToken(appDaemon, "daemon-secret", "https://graph.microsoft.com/.default")
	expired := e.userToken(appPublic, alice, exoScopes)
	if err := e.srv.ExpireToken(expired); err != nil {
		t.Fatal(err)
	}
	revoked := e.userToken(appPublic, alice, exoScopes)
	if err := e.srv.RevokeToken(revoked); err != nil {
		t.Fatal(err)
	}
	raw := func(s string) string { return s } // already base64
	tests := []struct {
		name           string
		ir             string
		imap, pop, smt bool
		reason         string // logged for failures
	}{
		{"delegated own mailbox", xoauth2(alice, userTok), true, true, true, ""},
		{"delegated user= case-insensitive", xoauth2("Alice@Contoso.com", userTok), true, true, true, ""},
		{"delegated shared mailbox with FullAccess", xoauth2(shared, userTok), true, true, true, ""},
		{"delegated shared mailbox without FullAccess", xoauth2(shared, bobTok), false, false, false, "has no FullAccess on mailbox sales@contoso.com"},
		{"delegated other user's mailbox", xoauth2(bob, userTok), false, false, false, "has no FullAccess on mailbox bob@contoso.com"},
		{"graph token", xoauth2(alice, graphTok), false, false, false, "not Exchange Online"},
		{"expired token", xoauth2(alice, expired), false, false, false, "token expired at"},
		{"revoked token", xoauth2(alice, revoked), false, false, false, "token is revoked"},
		{"unknown token", xoauth2(alice, "EwBnot-a-real-token"), false, false, false, "not issued by this emulator"},
		{"missing scope (IMAP only)", xoauth2(alice, narrowTok), true, false, false, "lacks scope"},
		{"user without mailbox", xoauth2("nomail@contoso.com", noMailTok), false, false, false, "no mailbox"},
		{"app-only with service principal and FullAccess", xoauth2(alice, appTok), true, true, true, ""},
		{"app-only on shared mailbox with FullAccess", xoauth2(shared, appTok), true, true, true, ""},
		{"app-only without FullAccess", xoauth2(bob, appTok), false, false, false, "has no FullAccess on mailbox bob@contoso.com (Add-MailboxPermission)"},
		{"app-only without service principal", xoauth2(alice, noSPTok), false, false, false, "has no Exchange service principal"},
		{"app-only graph token", xoauth2(alice, appGraphTok), false, false, false, "not Exchange Online"},
		{"malformed message", raw("dXNlcj1hbGljZQ=="), false, false, false, "malformed sasl message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			want := map[bool][3]string{true: {imapOK, popOK, smtpOK}, false: {imapNO, popERR, smtp535}}
			if got, w := e.imapAuth(tc.ir), want[tc.imap][0]; got != w {
				t.Errorf("imap: got %q, want %q", got, w)
			}
			if got, w := e.popAuth(tc.ir), want[tc.pop][1]; got != w {
				t.Errorf("pop3: got %q, want %q", got, w)
			}
			if got, w := e.smtpAuth(tc.ir), want[tc.smt][2]; got != w {
				t.Errorf("smtp: got %q, want %q", got, w)
			}
			if tc.reason != "" && !strings.Contains(e.logs.String(), tc.reason) {
				t.Errorf("log lacks reason %q", tc.reason)
			}
		})
	}
	for _, tok := range []string{userTok, bobTok, graphTok, appTok, expired, revoked} {
		if strings.Contains(e.logs.String(), tok) {
			t.Fatal("a token appears in the log")
		}
	}
}

// TestSMTPAuthDisabled checks 5.7.139 for the tenant and mailbox switches,
// the mailbox setting winning over the tenant's.
func TestSMTPAuthDisabled(t *testing.T) {
	e := newEnv(t)
	frank := e.userToken(appPublic, "frank@fabrikam.com", exoScopes)
	bobTok := e.userToken(appPublic, bob, exoScopes)
	if got := e.smtpAuth(xoauth2("frank@fabrikam.com", frank)); got != smtpNoTen {
		t.Errorf("tenant off: got %q", got)
	}
	// IMAP is not affected by the SMTP switch.
	if got := e.imapAuth(xoauth2("frank@fabrikam.com", frank)); got != imapOK {
		t.Errorf("imap with smtp off: got %q", got)
	}
	set := func(upn, v string) {
		if err := e.srv.UpdateUser(emulatorUserSMTP(upn, v)); err != nil {
			t.Fatal(err)
		}
	}
	set("frank@fabrikam.com", "enabled")
	if got := e.smtpAuth(xoauth2("frank@fabrikam.com", frank)); got != smtpOK {
		t.Errorf("mailbox enabled, tenant off: got %q", got)
	}
	set(bob, "disabled")
	if got := e.smtpAuth(xoauth2(bob, bobTok)); got != smtpNoBox {
		t.Errorf("mailbox off: got %q", got)
	}
	// Both off: the mailbox setting wins, so the reply names the Mailbox.
	set("frank@fabrikam.com", "disabled")
	if got := e.smtpAuth(xoauth2("frank@fabrikam.com", frank)); got != smtpNoBox {
		t.Errorf("mailbox and tenant off: got %q", got)
	}
	// A bad token still gets the generic 5.7.3 even where SMTP AUTH is off.
	if got := e.smtpAuth(xoauth2(bob, "EwBbogus")); got != smtp535 {
		t.Errorf("bad token, mailbox off: got %q", got)
	}
	set(bob, "")
	if got := e.smtpAuth(xoauth2(bob, bobTok)); got != smtpOK {
		t.Errorf("mailbox follows tenant again: got %q", got)
	}
	// Shared mailbox override (scenario: smtp_auth = "disabled").
	if got := e.smtpAuth(xoauth2("noreply@contoso.com", bobTok)); got != smtpNoBox {
		t.Errorf("shared mailbox off: got %q", got)
	}
}

// TestParseXOAUTH2 checks the framing rules of the decoder.
func TestParseXOAUTH2(t *testing.T) {
	tests := []struct {
		in         string
		user, tok  string
		wantErrSub string
	}{
		{"user=a@b\x01auth=Bearer tok\x01\x01", "a@b", "tok", ""},
		{"user=a@b\x01auth=bearer tok\x01\x01", "a@b", "tok", ""},
		{"user=a@b\x01auth=Bearer tok\x01", "", "", "does not end"},
		{"auth=Bearer tok\x01user=a@b\x01\x01", "", "", "lacks user="},
		{"user=\x01auth=Bearer tok\x01\x01", "", "", "lacks user="},
		{"user=a@b\x01auth=Basic tok\x01\x01", "", "", "lacks auth=Bearer"},
		{"user=a@b\x01auth=Bearer \x01\x01", "", "", "empty"},
		{"user=a@b\x01auth=Bearer t\x01x=y\x01\x01", "", "", "exactly"},
		{"\x01\x01", "", "", "exactly"},
	}
	for _, tc := range tests {
		u, tok, err := ParseXOAUTH2([]byte(tc.in))
		if tc.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErrSub)
			}
			continue
		}
		if err != nil || u != tc.user || tok != tc.tok {
			t.Errorf("%q: got %q %q %v", tc.in, u, tok, err)
		}
	}
}

// TestParseOAuthBearer checks the RFC 7628 decoder.
func TestParseOAuthBearer(t *testing.T) {
	got, err := ParseOAuthBearer([]byte("n,a=a=2Cb@c,\x01host=h\x01port=993\x01auth=Bearer tok\x01\x01"))
	if err != nil || got != (OAuthBearer{User: "a,b@c", Host: "h", Port: 993, Token: "tok"}) {
		t.Fatalf("got %+v %v", got, err)
	}
	for _, bad := range []string{"", "n,,\x01\x01", "y,a=x,\x01auth=Bearer t\x01\x01", "n,a=x,\x01port=99999\x01auth=Bearer t\x01\x01",
		"n,a=x,\x01auth=Basic t\x01\x01", "n,a=x\x01auth=Bearer t\x01\x01", "n,b=x,\x01auth=Bearer t\x01\x01"} {
		if _, err := ParseOAuthBearer([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestMailboxPermissionsAtRuntime changes delegates and IMAP/POP switches
// through the core's admin API and checks the servers follow at once.
func TestMailboxPermissionsAtRuntime(t *testing.T) {
	e := newEnv(t)
	bobTok := e.userToken(appPublic, bob, exoScopes)
	if got := e.imapAuth(xoauth2(alice, bobTok)); got != imapNO {
		t.Fatalf("before FullAccess: %q", got)
	}
	yes, no := true, false
	change := func(c emulator.ExchangeChange) {
		t.Helper()
		c.Tenant = tenant
		if err := e.srv.ChangeExchange(c); err != nil {
			t.Fatal(err)
		}
	}
	change(emulator.ExchangeChange{User: bob, Mailbox: alice, FullAccess: &yes})
	if got := e.imapAuth(xoauth2(alice, bobTok)); got != imapOK {
		t.Errorf("with FullAccess: %q", got)
	}
	change(emulator.ExchangeChange{Mailbox: alice, IMAPEnabled: &no})
	if got := e.imapAuth(xoauth2(alice, bobTok)); got != imapNO {
		t.Errorf("IMAP disabled: %q", got)
	}
	if got := e.popAuth(xoauth2(alice, bobTok)); got != popOK {
		t.Errorf("POP still enabled: %q", got)
	}
	change(emulator.ExchangeChange{Mailbox: alice, POPEnabled: &no})
	if got := e.popAuth(xoauth2(alice, bobTok)); got != popERR {
		t.Errorf("POP disabled: %q", got)
	}
	if !strings.Contains(e.logs.String(), "POP3 is disabled for mailbox alice@contoso.com") {
		t.Error("log lacks the disabled-protocol reason")
	}
	// App-only: removing the service principal locks the daemon out.
	appTok := e.appToken(appDaemon, "daemon-secret", "https://outlook.office365.com/.default")
	if got := e.smtpAuth(xoauth2(alice, appTok)); got != smtpOK {
		t.Fatalf("app before: %q", got)
	}
	change(emulator.ExchangeChange{ClientID: appDaemon, ServicePrincipal: &no})
	if got := e.smtpAuth(xoauth2(alice, appTok)); got != smtp535 {
		t.Errorf("app without service principal: %q", got)
	}
}

// TestLongTokens checks that a real-size (several KB) token fits in one
// AUTH line: the reply is the auth failure, not a line-length error.
func TestLongTokens(t *testing.T) {
	e := newEnv(t)
	ir := xoauth2(alice, "EwB"+strings.Repeat("A", 6000))
	if got := e.smtpAuth(ir); got != smtp535 {
		t.Errorf("smtp: %q", got)
	}
	if got := e.imapAuth(ir); got != imapNO {
		t.Errorf("imap: %q", got)
	}
	if got := e.popAuth(ir); got != popERR {
		t.Errorf("pop3: %q", got)
	}
}

// TestServices checks what Start adds to the emulator's service list (the
// lines 'mailoauth emulator' prints).
func TestServices(t *testing.T) {
	e := newEnv(t)
	var got []string
	for _, s := range e.srv.Services() {
		got = append(got, s.Name+" "+s.URL)
	}
	want := []string{"identity " + e.srv.URL, "imap imaps://" + e.xs.IMAPAddr, "pop3 pop3s://" + e.xs.POP3Addr,
		"smtp smtp://" + e.xs.SMTPAddr, "graph " + strings.TrimSuffix(e.xs.GraphURL, "/v1.0"), "imap-plain imap://" + e.xs.PlainIMAPAddr,
		"pop3-plain pop3://" + e.xs.PlainPOP3Addr}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("services:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := StartWith(e.srv.Emulator, e.srv.TLSConfig(), Options{IMAPAddr: "0.0.0.0:0"}); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1 only") {
		t.Errorf("non-loopback listen: %v", err)
	}
}
