package exchange

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

func TestIMAPWire(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken(appPublic, alice, exoScopes)
	l := e.dialTLS(e.xs.IMAPAddr)
	l.expect("* OK The Microsoft Exchange IMAP4 service is ready. [" + e.xs.serverID() + "]")
	l.send("c1 CAPABILITY")
	l.expect("* CAPABILITY IMAP4rev1 SASL-IR LITERAL- AUTH=XOAUTH2")
	l.expect("c1 OK CAPABILITY completed")
	l.send(`l1 LOGIN alice@contoso.com "alice-pw"`)
	l.expect("l1 NO LOGIN failed.")
	l.send("a0 AUTHENTICATE PLAIN")
	l.expect("a0 NO AUTHENTICATE failed.")
	l.send("a0 AUTHENTICATE OAUTHBEARER")
	l.expect("a0 NO AUTHENTICATE failed.")
	// Bad base64 and cancel get the same generic reply.
	l.send("a0 AUTHENTICATE XOAUTH2 !!!")
	l.expect("a0 NO AUTHENTICATE failed.")
	l.send("a0 AUTHENTICATE XOAUTH2")
	l.expect("+ ")
	l.send("*")
	l.expect("a0 NO AUTHENTICATE failed.")
	l.send("a0 AUTHENTICATE XOAUTH2")
	l.expect("+ ")
	l.send("!!!")
	l.expect("a0 NO AUTHENTICATE failed.")
	// Two-step XOAUTH2 (no SASL-IR).
	l.send("a1 AUTHENTICATE XOAUTH2")
	l.expect("+ ")
	l.send(xoauth2(alice, tok))
	l.expect(imapOK)
	l.send("s1 SELECT INBOX")
	l.readUntilPrefix("s1 OK")
	if !strings.Contains(e.logs.String(), "exchange login") {
		t.Error("successful login not logged")
	}
}

func TestIMAPOAuthBearerSwitch(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken(appPublic, alice, exoScopes)
	e.xs.SetOAuthBearer(true)
	ob := func(user, token string) string {
		gs2 := "n,,"
		if user != "" {
			gs2 = "n,a=" + user + ","
		}
		return base64.StdEncoding.EncodeToString([]byte(gs2 + "\x01host=127.0.0.1\x01port=993\x01auth=Bearer " + token + "\x01\x01"))
	}
	l := e.dialTLS(e.xs.IMAPAddr)
	l.read()
	l.send("c1 CAPABILITY")
	l.expect("* CAPABILITY IMAP4rev1 SASL-IR LITERAL- AUTH=XOAUTH2 AUTH=OAUTHBEARER")
	l.read()
	// Failure: RFC 7628 JSON challenge, client answers ^A, then NO.
	l.send("a1 AUTHENTICATE OAUTHBEARER " + ob(bob, tok))
	chal := l.expectPrefix("+ ")
	js, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(chal, "+ "))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"status": "invalid_token", "schemes": "bearer", "scope": "https://outlook.office.com/IMAP.AccessAsUser.All"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("challenge (-want +got):\n%s", d)
	}
	l.send("AQ==")
	l.expect(imapNO)
	l.send("a2 AUTHENTICATE OAUTHBEARER " + ob(alice, tok))
	l.expect("a2 OK AUTHENTICATE completed.")
	// Without a= the token's own user is meant.
	l2 := e.dialTLS(e.xs.IMAPAddr)
	l2.read()
	l2.send("a3 AUTHENTICATE OAUTHBEARER " + ob("", tok))
	l2.expect("a3 OK AUTHENTICATE completed.")
	// POP3 CAPA and SMTP EHLO follow the switch.
	p := e.dialTLS(e.xs.POP3Addr)
	p.read()
	p.send("CAPA")
	if d := cmp.Diff([]string{"+OK", "TOP", "UIDL", "SASL XOAUTH2 OAUTHBEARER", "USER", "."}, p.readUntil(".")); d != "" {
		t.Errorf("CAPA (-want +got):\n%s", d)
	}
	p.send("AUTH OAUTHBEARER " + ob(bob, tok))
	p.expectPrefix("+ eyJ") // base64 of the JSON challenge
	p.send("AQ==")
	p.expect(popERR)
	p.send("AUTH OAUTHBEARER " + ob(alice, tok))
	p.expect(popOK)
	// SMTP.
	s := e.smtpTLS()
	s.send("AUTH OAUTHBEARER " + ob(bob, tok))
	s.expectPrefix("334 eyJ")
	s.send("AQ==")
	s.expect(smtp535)
	s.send("AUTH OAUTHBEARER " + ob(alice, tok))
	s.expect(smtpOK)
	// Switched off again: not offered, refused.
	e.xs.SetOAuthBearer(false)
	s = e.smtpTLS()
	s.send("AUTH OAUTHBEARER " + ob(alice, tok))
	s.expect("504 5.7.4 Unrecognized authentication type")
}

func TestSMTPWire(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken(appPublic, alice, exoScopes)
	l := e.dial(e.xs.SMTPAddr)
	l.read()
	l.send("EHLO client.example")
	pre := l.reply()
	if !contains(pre, "250-STARTTLS") || contains(pre, "AUTH") {
		t.Errorf("EHLO before TLS: %q", pre)
	}
	// AUTH before STARTTLS is refused; EHLO does not offer it.
	l.send("AUTH XOAUTH2 " + xoauth2(alice, tok))
	l.expectPrefix("523 5.7.10 ")
	l.send("MAIL FROM:<alice@contoso.com>")
	l.expect("530 5.7.57 Client not authenticated to send mail. [EMU0P01MB0001.prod.outlook.com]")
	l.send("STARTTLS")
	l.expectPrefix("220 ")
	l.startTLS(e.tlsConfig())
	l.send("EHLO client.example")
	ehlo := l.reply()
	found := false
	for _, s := range ehlo {
		if s == "250-AUTH LOGIN XOAUTH2" {
			found = true
		}
	}
	if !found {
		t.Errorf("EHLO after TLS lacks AUTH LOGIN XOAUTH2: %q", ehlo)
	}
	// AUTH LOGIN asks for user and password, then refuses basic auth.
	l.send("AUTH LOGIN")
	l.expect("334 VXNlcm5hbWU6")
	l.send(base64.StdEncoding.EncodeToString([]byte(alice)))
	l.expect("334 UGFzc3dvcmQ6")
	l.send(base64.StdEncoding.EncodeToString([]byte("alice-pw")))
	l.expect("550 5.7.30 Basic authentication is not supported for Client Submission.")
	l.send("AUTH CRAM-MD5")
	l.expect("504 5.7.4 Unrecognized authentication type")
	// Two-step XOAUTH2.
	l.send("AUTH XOAUTH2")
	l.expect("334 ")
	l.send(xoauth2(alice, tok))
	l.expect(smtpOK)
	l.send("AUTH XOAUTH2 " + xoauth2(alice, tok))
	l.expect("503 5.5.1 Already authenticated")
	// SendAs: From bob is refused after DATA.
	l.send("MAIL FROM:<bob@contoso.com>")
	l.expectPrefix("250 ")
	l.send("RCPT TO:<alice@contoso.com>")
	l.expectPrefix("250 ")
	l.send("DATA")
	l.expectPrefix("354 ")
	l.send("From: bob@contoso.com\r\nTo: alice@contoso.com\r\nSubject: spoof\r\n\r\nhi\r\n.")
	l.expect("554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as bob@contoso.com; " +
		"STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a " +
		"permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData]")
	if n := len(e.xs.Messages(alice, "inbox")); n != 0 {
		t.Errorf("refused message was delivered (%d in inbox)", n)
	}
}

// TestSendSMTPReadBack sends with go-smtp's client (SendAs a shared
// mailbox included) and reads the mail back over IMAP and POP3.
func TestSendSMTPReadBack(t *testing.T) {
	e := newEnv(t)
	aliceTok := e.userToken(appPublic, alice, exoScopes)
	bobTok := e.userToken(appPublic, bob, exoScopes)
	c, err := smtp.DialStartTLS(e.xs.SMTPAddr, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(xoauth2Client{alice, aliceTok}); err != nil {
		t.Fatal(err)
	}
	for i, from := range []string{alice, shared} {
		msg := fmt.Sprintf("From: %s\r\nTo: bob@contoso.com\r\nCc: outside@example.org\r\nSubject: hello %d\r\n\r\n.leading dot\r\nbody %d\r\n", from, i, i)
		if err := c.SendMail(from, []string{bob, "outside@example.org"}, strings.NewReader(msg)); err != nil {
			t.Fatalf("send from %s: %v", from, err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	// Sent as the shared mailbox, the copy lands in the sender's own Sent
	// Items (Exchange's default without MessageCopyForSentAsEnabled).
	if n := len(e.xs.Messages(alice, "sentitems")); n != 2 {
		t.Errorf("alice sent items: %d, want 2", n)
	}
	if n := len(e.xs.Outbound()); n != 2 {
		t.Errorf("outbound: %d, want 2", n)
	}

	// IMAP (go-imap client): both messages in bob's INBOX.
	ic, err := imapclient.DialTLS(e.xs.IMAPAddr, &imapclient.Options{TLSConfig: e.tlsConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Authenticate(xoauth2Client{bob, bobTok}); err != nil {
		t.Fatal(err)
	}
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 {
		t.Fatalf("INBOX has %d messages, want 2", sel.NumMessages)
	}
	msgs, err := ic.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.Envelope.Subject)
	}
	if d := cmp.Diff([]string{"hello 0", "hello 1"}, subjects); d != "" {
		t.Errorf("IMAP subjects (-want +got):\n%s", d)
	}

	// POP3: STAT, LIST, UIDL, RETR (dot-stuffed), DELE, QUIT.
	p := e.dialTLS(e.xs.POP3Addr)
	p.read()
	p.send("STAT")
	p.expect("-ERR Command is not valid in this state.")
	p.send("USER bob@contoso.com")
	p.expect("+OK")
	p.send("PASS bob-pw")
	p.expect("-ERR Logon failure: unknown user name or bad password.")
	p.send("AUTH XOAUTH2 " + xoauth2(bob, bobTok))
	p.expect(popOK)
	p.send("STAT")
	stat := p.expectPrefix("+OK 2 ")
	p.send("LIST")
	list := p.readUntil(".")
	if len(list) != 4 {
		t.Errorf("LIST: %q", list)
	}
	p.send("UIDL 1")
	p.expectPrefix("+OK 1 AAMkAG")
	p.send("RETR 1")
	retr := p.readUntil(".")
	if !contains(retr, "Subject: hello 0") || !contains(retr, "..leading dot") {
		t.Errorf("RETR 1: %q", retr)
	}
	p.send("TOP 2 0")
	top := p.readUntil(".")
	if !contains(top, "Subject: hello 1") || contains(top, "body 1") {
		t.Errorf("TOP 2 0: %q", top)
	}
	p.send("RETR 3")
	p.expect("-ERR The specified message is out of range.")
	p.send("DELE 1")
	p.expect("+OK")
	p.send("RETR 1")
	p.expect("-ERR The specified message is out of range.")
	p.send("STAT")
	if got := p.read(); got == stat {
		t.Errorf("STAT after DELE unchanged: %q", got)
	}
	p.send("QUIT")
	p.expect("+OK Microsoft Exchange Server POP3 server signing off.")

	// The deletion is visible to the store and a new IMAP session.
	if n := len(e.xs.Messages(bob, "inbox")); n != 1 {
		t.Errorf("bob inbox after POP3 DELE: %d, want 1", n)
	}
	if err := ic.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := ic.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 1 {
		t.Errorf("IMAP STATUS after POP3 DELE: %d, want 1", *st.NumMessages)
	}
	// An IMAP expunge is visible to Graph/POP3.
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(e.xs.Messages(bob, "inbox")); n != 0 {
		t.Errorf("bob inbox after IMAP EXPUNGE: %d, want 0", n)
	}
}

func TestPOP3Wire(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken(appPublic, alice, exoScopes)
	p := e.dial(e.xs.PlainPOP3Addr)
	p.expect("+OK The Microsoft Exchange POP3 service is ready. [" + e.xs.serverID() + "]")
	p.send("CAPA")
	if d := cmp.Diff([]string{"+OK", "TOP", "UIDL", "SASL XOAUTH2", "USER", "."}, p.readUntil(".")); d != "" {
		t.Errorf("CAPA (-want +got):\n%s", d)
	}
	p.send("XYZZY")
	p.expect("-ERR Protocol error. 14")
	p.send("AUTH PLAIN")
	p.expect(popERR)
	p.send("AUTH XOAUTH2")
	p.expect("+ ")
	p.send("*")
	p.expect(popERR)
	p.send("AUTH XOAUTH2")
	p.expect("+ ")
	p.send("not base64!")
	p.expect(popERR)
	p.send("AUTH XOAUTH2")
	p.expect("+ ")
	p.send(xoauth2(alice, tok))
	p.expect(popOK)
	p.send("AUTH XOAUTH2")
	p.expect("-ERR Command is not valid in this state.")
	p.send("STAT")
	p.expect("+OK 0 0")
	p.send("LIST")
	p.expect("+OK")
	p.expect(".")
	p.send("NOOP")
	p.expect("+OK")
	// Line-length cap, also inside AUTH: the server answers and hangs up.
	q := e.dial(e.xs.PlainPOP3Addr)
	q.read()
	q.send("AUTH XOAUTH2")
	q.expect("+ ")
	q.send(strings.Repeat("QUIT", maxPOPLine))
	q.expect("-ERR Protocol error. Line too long.")
	if _, err := q.r.ReadString('\n'); err == nil {
		t.Error("connection still open after an over-long SASL line")
	}
	// Line-length cap: the server answers and hangs up.
	p.send("NOOP " + strings.Repeat("x", maxPOPLine+10))
	p.expect("-ERR Protocol error. Line too long.")
}

// xoauth2Client is a minimal XOAUTH2 client for go-smtp's and go-imap's
// clients in tests (the project's client mechanism lives in another
// package, which the emulator must not import).
type xoauth2Client struct{ user, token string }

func (c xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }

var _ sasl.Client = xoauth2Client{}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestSMTPAppOnlySend sends as an app (SMTP.SendAsApp, service principal,
// FullAccess on alice): From alice goes through, From bob is SendAsDenied.
func TestSMTPAppOnlySend(t *testing.T) {
	e := newEnv(t)
	appTok := e.appToken(appDaemon, "daemon-secret", "https://outlook.office365.com/.default")
	c, err := smtp.DialStartTLS(e.xs.SMTPAddr, e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(xoauth2Client{alice, appTok}); err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: from the daemon\r\n\r\nhi\r\n"
	if err := c.SendMail(alice, []string{bob}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail(bob, []string{alice}, strings.NewReader(strings.Replace(msg, "From: alice", "From: bob", 1)))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 2, 252}) {
		t.Fatalf("send as bob: %v", err)
	}
	got := e.xs.Messages(bob, "inbox")
	if len(got) != 1 || got[0].Subject != "from the daemon" || got[0].From.Address != alice {
		t.Fatalf("bob inbox: %+v", got)
	}
}

// TestConcurrentDelivery sends over SMTP and Graph in parallel while POP3
// and the store are read, for the race detector and the reconcile logic.
func TestConcurrentDelivery(t *testing.T) {
	e := newEnv(t)
	exo := e.userToken(appPublic, alice, exoScopes)
	g := e.userToken(appPublic, alice, graphScope)
	bobTok := e.userToken(appPublic, bob, exoScopes)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for w := range 3 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := smtp.DialStartTLS(e.xs.SMTPAddr, e.tlsConfig())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Auth(xoauth2Client{alice, exo}); err != nil {
				errs <- err
				return
			}
			for i := range 4 {
				msg := fmt.Sprintf("From: alice@contoso.com\r\nSubject: smtp %d/%d\r\n\r\nx\r\n", w, i)
				if err := c.SendMail(alice, []string{bob}, strings.NewReader(msg)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 4 {
				body, _ := json.Marshal(mailJSON(fmt.Sprintf("graph %d/%d", w, i), bob))
				req, _ := http.NewRequest("POST", e.xs.GraphURL+"/me/sendMail", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+g)
				req.Header.Set("Content-Type", "application/json")
				resp, err := e.http.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 202 {
					errs <- fmt.Errorf("sendMail: %d", resp.StatusCode)
					return
				}
				_ = e.xs.Messages(bob, "inbox")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(e.xs.Messages(bob, "inbox")); n != 24 {
		t.Fatalf("bob inbox: %d, want 24", n)
	}
	p := e.dialTLS(e.xs.POP3Addr)
	p.read()
	p.send("AUTH XOAUTH2 " + xoauth2(bob, bobTok))
	p.expect(popOK)
	p.send("STAT")
	p.expectPrefix("+OK 24 ")
}

// TestIMAPChangesMirrored appends, copies and moves over IMAP (go-imap's
// client) and reads the folders back through the store Graph and POP3 use.
func TestIMAPChangesMirrored(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		if err := e.xs.Deliver(alice, fmt.Appendf(nil, "From: x@example.org\r\nSubject: in %d\r\n\r\nhi\r\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	ic, err := imapclient.DialTLS(e.xs.IMAPAddr, &imapclient.Options{TLSConfig: e.tlsConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Authenticate(xoauth2Client{alice, e.userToken(appPublic, alice, exoScopes)}); err != nil {
		t.Fatal(err)
	}
	draft := "From: alice@contoso.com\r\nSubject: a draft\r\n\r\nlater\r\n"
	ac := ic.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
	if _, err := io.WriteString(ac, draft); err != nil {
		t.Fatal(err)
	}
	if err := ac.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Copy(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Move(imap.SeqSetNum(2, 3), "Deleted Items").Wait(); err != nil {
		t.Fatal(err)
	}
	subjects := func(folder string) []string {
		var out []string
		for _, m := range e.xs.Messages(alice, folder) {
			out = append(out, m.Subject)
		}
		return out
	}
	for folder, want := range map[string][]string{
		"drafts":       {"a draft"},
		"archive":      {"in 0"},
		"inbox":        {"in 0"},
		"deleteditems": {"in 2", "in 1"},
	} {
		if d := cmp.Diff(want, subjects(folder)); d != "" {
			t.Errorf("%s (-want +got):\n%s", folder, d)
		}
	}
	if m := e.xs.Messages(alice, "drafts"); len(m) == 1 && !m[0].Read {
		t.Error("appended \\Seen draft is unread")
	}
}
