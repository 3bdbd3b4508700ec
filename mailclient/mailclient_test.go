package mailclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/pop3"
	"github.com/mailoauth/mailoauth/internal/testenv/testtls"
	"github.com/mailoauth/mailoauth/sasl"
)

const (
	user = "alice@example.test"
	tok  = "tok-123"
	xoIR = "dXNlcj1hbGljZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgdG9rLTEyMwEB"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Server
		wantErr bool
	}{
		{"imaps://outlook.office365.com", Server{IMAP, ImplicitTLS, "outlook.office365.com", 993}, false},
		{"imap://mail.example.com", Server{IMAP, StartTLS, "mail.example.com", 143}, false},
		{"imap+insecure://127.0.0.1:21143", Server{IMAP, Insecure, "127.0.0.1", 21143}, false},
		{"pop3s://outlook.office365.com", Server{POP3, ImplicitTLS, "outlook.office365.com", 995}, false},
		{"pop3://h", Server{POP3, StartTLS, "h", 110}, false},
		{"pop3+insecure://[::1]:1100", Server{POP3, Insecure, "::1", 1100}, false},
		{"smtp://smtp.office365.com", Server{SMTP, StartTLS, "smtp.office365.com", 587}, false},
		{"SMTPS://smtp.gmail.com", Server{SMTP, ImplicitTLS, "smtp.gmail.com", 465}, false},
		{"smtp+insecure://localhost:2525", Server{SMTP, Insecure, "localhost", 2525}, false},
		{"smtp+insecure://smtp.example.com", Server{}, true},
		{"imap+insecure://10.0.0.1", Server{}, true},
		{"http://example.com", Server{}, true},
		{"imaps://user@example.com", Server{}, true},
		{"imaps://example.com/INBOX", Server{}, true},
		{"imaps://example.com:0", Server{}, true},
		{"imaps://", Server{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseURL err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseURL (-want +got):\n%s", diff)
			}
			if err == nil {
				if again, _ := ParseURL(got.URL()); again != got {
					t.Errorf("URL() %q does not round-trip", got.URL())
				}
			}
		})
	}
	if _, err := ParseURL("imap+insecure://example.com"); !errors.Is(err, ErrInsecureNotLoopback) {
		t.Errorf("err = %v, want ErrInsecureNotLoopback", err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCheckIMAP(t *testing.T) {
	srvTLS, cliTLS := testtls.Configs(t)
	greeting := "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2] The Microsoft Exchange IMAP4 service is ready."
	tests := []struct {
		name      string
		scheme    string
		script    []step
		wantSteps []string
		wantReply string
		wantHint  string
	}{
		{"exchange success with recent", "imap+insecure", []step{
			{Send: []string{greeting}, Expect: "T1 AUTHENTICATE XOAUTH2 " + xoIR},
			// Capabilities in the OK (as Dovecot does) keep go-imap from
			// asking for them in the background, which would make the
			// order of lines racy.
			{Send: []string{"T1 OK [CAPABILITY IMAP4rev1 IDLE] AUTHENTICATE completed."}, Expect: "T2 STATUS INBOX (MESSAGES UNSEEN)"},
			{Send: []string{"* STATUS INBOX (MESSAGES 2 UNSEEN 1)", "T2 OK STATUS completed."}, Expect: "T3 EXAMINE INBOX"},
			{Send: []string{"* 2 EXISTS", "T3 OK [READ-ONLY] EXAMINE completed."}, Expect: "T4 FETCH 1:2 (UID ENVELOPE)"},
			{Send: []string{
				`* 1 FETCH (UID 7 ENVELOPE ("Mon, 2 Nov 2026 10:00:00 +0000" "first" (("Bob" NIL "bob" "example.test")) NIL NIL NIL NIL NIL NIL "<m1@example.test>"))`,
				`* 2 FETCH (UID 9 ENVELOPE ("Tue, 3 Nov 2026 10:00:00 +0000" "second" (("Carol" NIL "carol" "example.test")) NIL NIL NIL NIL NIL NIL "<m2@example.test>"))`,
				"T4 OK FETCH completed."}, Expect: "T5 LOGOUT"},
			{Send: []string{"* BYE", "T5 OK LOGOUT completed."}},
		}, []string{"connect", "capabilities", "authenticate", "inbox", "fetch"}, "", ""},
		{"exchange refusal", "imap+insecure", []step{
			{Send: []string{greeting}, Expect: "T1 AUTHENTICATE XOAUTH2 " + xoIR},
			{Send: []string{"T1 NO AUTHENTICATE failed."}},
		}, []string{"connect", "capabilities", "authenticate!"}, "NO AUTHENTICATE failed.", "IMAP.AccessAsApp"},
		{"dovecot expired token", "imap+insecure", []step{
			{Send: []string{"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=XOAUTH2] Dovecot ready."}, Expect: "T1 AUTHENTICATE XOAUTH2 " + xoIR},
			// The XOAUTH2 ack is an empty line (go-imap alone would send "=").
			{Send: []string{"+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="}, Expect: "<empty>"},
			{Send: []string{"T1 NO [AUTHENTICATIONFAILED] Authentication failed."}},
		}, []string{"connect", "capabilities", "authenticate!"}, "NO [AUTHENTICATIONFAILED] Authentication failed.", "OAuth status 401"},
		{"starttls then login", "imap", []step{
			{Send: []string{"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready"}, Expect: "S2 STARTTLS"},
			{Send: []string{"S2 OK Begin TLS negotiation now.", "<tls>"}, Expect: "T1 CAPABILITY"},
			{Send: []string{"* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2", "T1 OK done"}, Expect: "T2 AUTHENTICATE XOAUTH2 " + xoIR},
			{Send: []string{"T2 OK [CAPABILITY IMAP4rev1] Logged in"}, Expect: "T3 STATUS INBOX (MESSAGES UNSEEN)"},
			{Send: []string{"* STATUS INBOX (MESSAGES 0 UNSEEN 0)", "T3 OK done"}, Expect: "T4 LOGOUT"},
			{Send: []string{"T4 OK bye"}},
		}, []string{"connect", "starttls", "capabilities", "authenticate", "inbox"}, "", ""},
		{"starttls not offered: nothing sent", "imap", []step{
			{Send: []string{"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready"}},
		}, []string{"connect", "starttls!"}, "", "does not offer STARTTLS"},
		{"starttls asked for capabilities, then refused", "imap", []step{
			{Send: []string{"* OK ready"}, Expect: "S1 CAPABILITY"},
			{Send: []string{"* CAPABILITY IMAP4rev1 STARTTLS AUTH=XOAUTH2", "S1 OK done"}, Expect: "S2 STARTTLS"},
			{Send: []string{"S2 BAD [CLIENTBUG] Unknown command"}},
		}, []string{"connect", "starttls!"}, "BAD [CLIENTBUG] Unknown command", ""},
		{"preauth on starttls url refused", "imap", []step{
			{Send: []string{"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in"}},
		}, []string{"connect", "starttls!"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptServer(t, tt.script, srvTLS)
			opts := Options{User: user, Token: tok, TLSConfig: cliTLS, Recent: 5}
			rep, err := CheckIMAP(ctx(t), mustURL(t, tt.scheme, addr), opts)
			res := <-done
			// go-imap writes STATUS items in map order.
			for i, l := range res.Lines {
				res.Lines[i] = strings.Replace(l, "(UNSEEN MESSAGES)", "(MESSAGES UNSEEN)", 1)
			}
			if diff := cmp.Diff(expected(tt.script), res.Lines); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSteps, stepNames(rep)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			checkFailure(t, rep, err, tt.wantReply, tt.wantHint)
			if tt.name == "exchange success with recent" {
				want := []Summary{
					{ID: "9", Subject: "second", From: "carol@example.test", Date: time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC), MessageID: "m2@example.test"},
					{ID: "7", Subject: "first", From: "bob@example.test", Date: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), MessageID: "m1@example.test"},
				}
				for i := range rep.Messages {
					rep.Messages[i].Date = rep.Messages[i].Date.UTC()
					rep.Messages[i].MessageID = trimAngles(rep.Messages[i].MessageID)
				}
				if diff := cmp.Diff(want, rep.Messages); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// checkFailure asserts the outcome: success when wantReply and wantHint
// are empty, else a failed last step with that reply and a hint naming
// wantHint.
func checkFailure(t *testing.T, rep *Report, err error, wantReply, wantHint string) {
	t.Helper()
	if wantReply == "" && wantHint == "" && !strings.HasSuffix(rep.Steps[len(rep.Steps)-1].Name, "tls") {
		if err != nil || !rep.OK() {
			t.Fatalf("check failed: %v\n%s", err, rep)
		}
		return
	}
	if err == nil || rep.OK() {
		t.Fatalf("check passed, want failure\n%s", rep)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if last.Reply != wantReply {
		t.Errorf("reply = %q, want %q", last.Reply, wantReply)
	}
	if !strings.Contains(last.Hint, wantHint) {
		t.Errorf("hint = %q, want it to mention %q", last.Hint, wantHint)
	}
	if strings.Contains(err.Error(), tok) || strings.Contains(rep.String(), tok) {
		t.Errorf("token leaked: %v / %s", err, rep)
	}
}

func TestCheckSMTP(t *testing.T) {
	srvTLS, cliTLS := testtls.Configs(t)
	ehloPlain := []string{"250-outlook.office365.com Hello", "250-SIZE 157286400", "250-STARTTLS", "250 ENHANCEDSTATUSCODES"}
	ehloTLS := []string{"250-outlook.office365.com Hello", "250-SIZE 157286400", "250-AUTH LOGIN XOAUTH2", "250 ENHANCEDSTATUSCODES"}
	login := func(final string) []step {
		return []step{
			{Send: []string{"220 x.outlook.office365.com Microsoft ESMTP MAIL Service ready"}, Expect: "EHLO localhost"},
			{Send: ehloPlain, Expect: "STARTTLS"},
			{Send: []string{"220 2.0.0 SMTP server ready", "<tls>"}, Expect: "EHLO localhost"},
			{Send: ehloTLS, Expect: "AUTH XOAUTH2 " + xoIR},
			{Send: []string{final}, Expect: map[bool]string{true: "QUIT", false: ""}[strings.HasPrefix(final, "235")]},
			{Send: []string{"221 2.0.0 Service closing transmission channel"}},
		}
	}
	tests := []struct {
		name      string
		scheme    string
		script    []step
		wantSteps []string
		wantReply string
		wantHint  string
	}{
		{"exchange success", "smtp", login("235 2.7.0 Authentication successful"),
			[]string{"connect", "starttls", "capabilities", "authenticate"}, "", ""},
		{"smtp auth disabled for the mailbox", "smtp",
			login("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."),
			[]string{"connect", "starttls", "capabilities", "authenticate!"},
			"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
			"Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false"},
		{"smtp auth disabled for the tenant", "smtp",
			login("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."),
			[]string{"connect", "starttls", "capabilities", "authenticate!"},
			"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
			"Set-TransportConfig -SmtpClientAuthenticationDisabled $false"},
		{"exchange 5.7.3", "smtp", login("535 5.7.3 Authentication unsuccessful [AM0PR01CA0001.eurprd01.prod.outlook.com]"),
			[]string{"connect", "starttls", "capabilities", "authenticate!"},
			"535 5.7.3 Authentication unsuccessful [AM0PR01CA0001.eurprd01.prod.outlook.com]", "SMTP.SendAsApp"},
		{"no STARTTLS offered: refused before AUTH", "smtp", []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: []string{"250-mail.example.test", "250 AUTH XOAUTH2"}, Expect: ""},
		}, []string{"connect", "starttls!"}, "", "does not offer STARTTLS"},
		{"no oauth before TLS on insecure url", "smtp+insecure", []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: []string{"250-mail.example.test", "250 STARTTLS"}},
		}, []string{"connect", "capabilities", "authenticate!"}, "", "no OAuth mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptServer(t, tt.script, srvTLS)
			rep, err := CheckSMTP(ctx(t), mustURL(t, tt.scheme, addr), Options{User: user, Token: tok, TLSConfig: cliTLS})
			res := <-done
			if diff := cmp.Diff(expected(tt.script), res.Lines); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSteps, stepNames(rep)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			checkFailure(t, rep, err, tt.wantReply, tt.wantHint)
			var se *smtp.SMTPError
			if tt.wantReply != "" && !errors.As(err, &se) {
				t.Errorf("err %v does not carry *smtp.SMTPError", err)
			}
		})
	}
}

func TestCheckPOP3(t *testing.T) {
	srvTLS, cliTLS := testtls.Configs(t)
	capa := []string{"+OK", "UIDL", "SASL XOAUTH2", "STLS", "."}
	tests := []struct {
		name      string
		script    []step
		wantSteps []string
		wantReply string
		wantHint  string
	}{
		{"exchange success over STLS with recent", []step{
			{Send: []string{"+OK The Microsoft Exchange POP3 service is ready."}, Expect: "CAPA"},
			{Send: capa, Expect: "STLS"},
			{Send: []string{"+OK Begin TLS negotiation", "<tls>"}, Expect: "CAPA"},
			{Send: capa, Expect: "AUTH XOAUTH2"},
			{Send: []string{"+"}, Expect: xoIR},
			{Send: []string{"+OK User successfully authenticated."}, Expect: "STAT"},
			{Send: []string{"+OK 1 120"}, Expect: "UIDL"},
			{Send: []string{"+OK", "1 AQAAAA==", "."}, Expect: "RETR 1"},
			{Send: []string{"+OK", "From: Bob <bob@example.test>", "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=", "Message-ID: <p1@example.test>", "Date: Mon, 2 Nov 2026 10:00:00 +0000", "", "hi", "."}, Expect: "QUIT"},
			{Send: []string{"+OK Microsoft Exchange Server POP3 server signing off."}},
		}, []string{"connect", "starttls", "capabilities", "authenticate", "stat", "fetch"}, "", ""},
		{"exchange refusal", []step{
			{Send: []string{"+OK The Microsoft Exchange POP3 service is ready."}, Expect: "CAPA"},
			{Send: capa, Expect: "STLS"},
			{Send: []string{"+OK Begin TLS negotiation", "<tls>"}, Expect: "CAPA"},
			{Send: capa, Expect: "AUTH XOAUTH2"},
			{Send: []string{"+"}, Expect: xoIR},
			{Send: []string{"-ERR Authentication failure: unknown user name or bad password."}},
		}, []string{"connect", "starttls", "capabilities", "authenticate!"},
			"-ERR Authentication failure: unknown user name or bad password.", "POP.AccessAsApp"},
		{"no CAPA: STLS refused by the server", []step{
			{Send: []string{"+OK ready"}, Expect: "CAPA"},
			{Send: []string{"-ERR unknown command"}, Expect: "STLS"},
			{Send: []string{"-ERR unknown command"}},
		}, []string{"connect", "starttls!"}, "-ERR unknown command", "does not offer STARTTLS"},
		{"no STLS: refused", []step{
			{Send: []string{"+OK ready"}, Expect: "CAPA"},
			{Send: []string{"+OK", "SASL XOAUTH2", "."}},
		}, []string{"connect", "starttls!"}, "", "does not offer STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptServer(t, tt.script, srvTLS)
			rep, err := CheckPOP3(ctx(t), mustURL(t, "pop3", addr), Options{User: user, Token: tok, TLSConfig: cliTLS, Recent: 3})
			res := <-done
			if diff := cmp.Diff(expected(tt.script), res.Lines); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSteps, stepNames(rep)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			checkFailure(t, rep, err, tt.wantReply, tt.wantHint)
			var pe *pop3.Error
			if tt.wantReply != "" && !errors.As(err, &pe) {
				t.Errorf("err %v does not carry *pop3.Error", err)
			}
			if len(rep.Messages) > 0 {
				want := []Summary{{ID: "AQAAAA==", Subject: "grüße", From: "bob@example.test", Date: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), MessageID: "p1@example.test"}}
				if diff := cmp.Diff(want, rep.Messages); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestCheckPOP3WithoutCAPA(t *testing.T) {
	script := []step{
		{Send: []string{"+OK ready"}, Expect: "CAPA"},
		{Send: []string{"-ERR unknown command"}, Expect: "AUTH XOAUTH2"},
		{Send: []string{"+ "}, Expect: xoIR},
		{Send: []string{"+OK welcome"}, Expect: "STAT"},
		{Send: []string{"+OK 0 0"}, Expect: "QUIT"},
		{Send: []string{"+OK bye"}},
	}
	addr, done := scriptServer(t, script, nil)
	rep, err := CheckPOP3(ctx(t), mustURL(t, "pop3+insecure", addr), Options{User: user, Token: tok})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if diff := cmp.Diff(expected(script), (<-done).Lines); diff != "" {
		t.Errorf("client lines (-want +got):\n%s", diff)
	}
}

func TestSend(t *testing.T) {
	script := []step{
		{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
		{Send: []string{"250-mail.example.test", "250 AUTH OAUTHBEARER XOAUTH2"}, Expect: "AUTH OAUTHBEARER " + sasl.OAuthBearerInitialResponse(sasl.Options{User: "shared@example.test", Token: tok, Host: "127.0.0.1", Port: 0})},
		{Send: []string{"235 2.7.0 Logged in."}, Expect: "MAIL FROM:<shared@example.test>"},
		{Send: []string{"250 2.1.0 Ok"}, Expect: "RCPT TO:<bob@example.test>"},
		{Send: []string{"250 2.1.5 Ok"}, Expect: "RCPT TO:<hidden@example.test>"},
		{Send: []string{"250 2.1.5 Ok"}, Expect: "DATA"},
		{Send: []string{"354 OK"}, Expect: "<data>"},
		{Send: []string{"250 2.0.0 Ok: queued"}, Expect: "QUIT"},
		{Send: []string{"221 2.0.0 Bye"}},
	}
	addr, done := scriptServer(t, script, nil)
	srv := mustURL(t, "smtp+insecure", addr)
	// The OAUTHBEARER initial response names the port; fix the script's
	// expectation now that it is known.
	script[1].Expect = "AUTH OAUTHBEARER " + sasl.OAuthBearerInitialResponse(sasl.Options{User: "shared@example.test", Token: tok, Host: "127.0.0.1", Port: srv.Port})
	msg := &Message{
		To:          []string{"Bob <bob@example.test>"},
		Bcc:         []string{"hidden@example.test"},
		Subject:     "Report ✓",
		Body:        strings.NewReader("Hello Bob,\nsee attached.\n.\nA line with a dot.\n"),
		Attachments: []Attachment{{Name: "data.json", Data: []byte(`{"a":1}`)}, {Name: "blob", Data: []byte("\x89PNG\r\n\x1a\n0000")}},
		Date:        time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC),
	}
	rep, err := Send(ctx(t), srv, Options{User: "shared@example.test", Token: tok, Mechanism: "oauthbearer"}, msg)
	res := <-done
	if err != nil {
		t.Fatalf("Send: %v\n%s", err, rep)
	}
	if diff := cmp.Diff(expected(script), res.Lines); diff != "" {
		t.Errorf("client lines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"connect", "capabilities", "authenticate", "send"}, stepNames(rep)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	// Undo SMTP dot-stuffing, then read the message back as MIME.
	data := strings.ReplaceAll(res.Data, "\r\n..", "\r\n.")
	checkMIME(t, data)
}

func checkMIME(t *testing.T, data string) {
	t.Helper()
	if strings.Contains(data, "hidden@example.test") {
		t.Error("Bcc address written into the message")
	}
	m, err := gomail.CreateReader(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := m.Header.Subject()
	from, _ := m.Header.AddressList("From")
	to, _ := m.Header.AddressList("To")
	date, _ := m.Header.Date()
	id, _ := m.Header.MessageID()
	if subj != "Report ✓" || len(from) != 1 || from[0].Address != "shared@example.test" ||
		len(to) != 1 || to[0].Address != "bob@example.test" || !date.Equal(time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)) ||
		!strings.HasSuffix(id, "@example.test") {
		t.Errorf("headers: subject %q from %v to %v date %v id %q", subj, from, to, date, id)
	}
	type part struct{ Kind, Type, Name, Body string }
	var got []part
	for {
		p, err := m.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *gomail.InlineHeader:
			ct, _, _ := h.ContentType()
			got = append(got, part{"inline", ct, "", string(body)})
		case *gomail.AttachmentHeader:
			ct, _, _ := h.ContentType()
			name, _ := h.Filename()
			got = append(got, part{"attachment", ct, name, string(body)})
		}
	}
	want := []part{
		{"inline", "text/plain", "", "Hello Bob,\nsee attached.\n.\nA line with a dot.\n"},
		{"attachment", "application/json", "data.json", `{"a":1}`},
		{"attachment", "image/png", "blob", "\x89PNG\r\n\x1a\n0000"},
	}
	// text/plain bodies come back with CRLF line ends.
	for i := range got {
		if got[i].Kind == "inline" {
			got[i].Body = strings.ReplaceAll(got[i].Body, "\r\n", "\n")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	if _, err := mail.ReadMessage(strings.NewReader(data)); err != nil {
		t.Errorf("net/mail cannot read it: %v", err)
	}
}

func TestMessageErrors(t *testing.T) {
	for _, m := range []*Message{
		{To: []string{"a@b"}},
		{From: "a@b"},
		{From: "not an address", To: []string{"a@b"}},
		{From: "a@b", To: []string{"bad <"}},
	} {
		if _, err := m.Bytes(); err == nil {
			t.Errorf("%+v: no error", m)
		}
	}
}

func TestHint(t *testing.T) {
	authErr := &sasl.AuthError{Mechanism: "XOAUTH2", Status: "invalid_token"}
	tests := []struct {
		name  string
		proto Protocol
		reply string
		err   error
		want  string
	}{
		{"sendas", SMTP, "554 5.2.252 SendAsDenied; alice not allowed to send as bob", nil, "Send As"},
		{"basic auth", SMTP, "550 5.7.30 Basic authentication is not supported for Client Submission.", nil, "OAuth, not a password"},
		{"temporary", IMAP, "NO [UNAVAILABLE] Temporary authentication failure. [vm:2026-11-21 23:20:35]", nil, "try again later"},
		{"pop temp", POP3, "-ERR [SYS/TEMP] Temporary authentication failure.", nil, "try again later"},
		{"oauth challenge", IMAP, "NO [AUTHENTICATIONFAILED] Authentication failed.", authErr, "invalid_token"},
		{"unknown", IMAP, "NO something else", errors.New("x"), ""},
		{"imap error type", IMAP, "", &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed."}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hint(tt.proto, "authenticate", tt.reply, tt.err)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("hint = %q, want it to mention %q", got, tt.want)
			}
		})
	}
}

func TestTLSVerificationFailureHint(t *testing.T) {
	srvTLS, _ := testtls.Configs(t)
	addr, _ := scriptServer(t, []step{{Send: []string{"<tls>", "* OK ready"}}}, srvTLS)
	rep, err := CheckIMAP(ctx(t), mustURL(t, "imaps", addr), Options{User: user, Token: tok})
	if err == nil {
		t.Fatal("self-signed certificate accepted")
	}
	if diff := cmp.Diff([]string{"connect", "tls!"}, stepNames(rep)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if h := rep.Steps[1].Hint; !strings.Contains(h, "ca_file") {
		t.Errorf("hint = %q", h)
	}
}

func TestTLSConfigCAFile(t *testing.T) {
	if _, err := TLSConfig(""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := TLSConfig(dir + "/missing.pem"); err == nil {
		t.Error("missing file accepted")
	}
}

func TestContextCancelStopsCheck(t *testing.T) {
	// A server that greets and then never answers.
	addr, _ := scriptServer(t, []step{{Send: []string{"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready"}, Expect: "T1 AUTHENTICATE"}, {Send: nil, Expect: "never"}}, nil)
	c, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := CheckIMAP(c, mustURL(t, "imap+insecure", addr), Options{User: user, Token: tok})
	if err == nil {
		t.Fatal("check passed against a silent server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("check took %v after the context ended", d)
	}
}

func TestSendAsDenied(t *testing.T) {
	script := []step{
		{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
		{Send: []string{"250-mail.example.test", "250 AUTH LOGIN XOAUTH2"}, Expect: "AUTH XOAUTH2 " + xoIR},
		{Send: []string{"235 2.7.0 Authentication successful"}, Expect: "MAIL FROM:<boss@example.test>"},
		{Send: []string{"250 2.1.0 Sender OK"}, Expect: "RCPT TO:<bob@example.test>"},
		{Send: []string{"250 2.1.5 Recipient OK"}, Expect: "DATA"},
		{Send: []string{"354 Start mail input; end with <CRLF>.<CRLF>"}, Expect: "<data>"},
		{Send: []string{"554 5.2.252 SendAsDenied; alice@example.test not allowed to send as boss@example.test; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"}},
	}
	addr, done := scriptServer(t, script, nil)
	msg := &Message{From: "boss@example.test", To: []string{"bob@example.test"}, Subject: "x", Body: strings.NewReader("x\n")}
	rep, err := Send(ctx(t), mustURL(t, "smtp+insecure", addr), Options{User: user, Token: tok}, msg)
	res := <-done
	if diff := cmp.Diff(expected(script), res.Lines); diff != "" {
		t.Errorf("client lines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"connect", "capabilities", "authenticate", "send!"}, stepNames(rep)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	checkFailure(t, rep, err,
		"554 5.2.252 SendAsDenied; alice@example.test not allowed to send as boss@example.test; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
		"Send As")
}

func TestReportString(t *testing.T) {
	rep := &Report{Server: "smtp://smtp.office365.com:587", Protocol: SMTP, User: "me@contoso.com", Steps: []Step{
		{Name: "connect", OK: true, Detail: "connected to 52.0.0.1:587"},
		{Name: "authenticate", Detail: "XOAUTH2 login as me@contoso.com refused", Reply: "535 5.7.3 Authentication unsuccessful",
			Status: "401", Scope: "mail", Hint: "do this"},
	}}
	want := `SMTP smtp://smtp.office365.com:587 as me@contoso.com
  ok   connect       connected to 52.0.0.1:587
  FAIL authenticate  XOAUTH2 login as me@contoso.com refused
       server said: 535 5.7.3 Authentication unsuccessful
       oauth status: 401 (scope mail)
       hint: do this
`
	if diff := cmp.Diff(want, rep.String()); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
	if rep.OK() {
		t.Error("OK() with a failed step")
	}

	// A failure without a reply line shows the error, the only "why".
	rep = &Report{Server: "imaps://127.0.0.1:1", Protocol: IMAP, User: "me@contoso.com", Steps: []Step{
		{Name: "connect", Detail: "could not connect to 127.0.0.1:1", Error: "dial tcp 127.0.0.1:1: connect: connection refused", Hint: "check"},
	}}
	want = `IMAP imaps://127.0.0.1:1 as me@contoso.com
  FAIL connect       could not connect to 127.0.0.1:1
       error: dial tcp 127.0.0.1:1: connect: connection refused
       hint: check
`
	if diff := cmp.Diff(want, rep.String()); diff != "" {
		t.Errorf("String without a reply (-want +got):\n%s", diff)
	}
}

func TestCheckDispatch(t *testing.T) {
	if _, err := Check(ctx(t), Server{Protocol: "nntp"}, Options{}); err == nil {
		t.Error("unknown protocol accepted")
	}
	// Wrong protocol for the function: refused before connecting.
	rep, err := CheckPOP3(ctx(t), Server{Protocol: IMAP, Host: "127.0.0.1", Port: 1}, Options{User: user})
	if err == nil || len(rep.Steps) != 1 {
		t.Errorf("CheckPOP3 on an IMAP url: %v %v", err, rep)
	}
}

// TestSilentServer checks the greeting timeout: a server that accepts and
// says nothing (an implicit-TLS port reached with a STARTTLS URL waits for
// our TLS hello as we wait for its greeting) fails in GreetingTimeout with
// a hint naming the TLS URL, instead of hanging until ctx ends.
func TestSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never written to
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	addr := ln.Addr().String()
	tests := []struct {
		scheme, wantHint string
	}{
		{"imap", fmt.Sprintf("port %d may expect TLS from the start; try imaps://%s", port, addr)},
		{"pop3", fmt.Sprintf("port %d may expect TLS from the start; try pop3s://%s", port, addr)},
		{"smtp", fmt.Sprintf("port %d may expect TLS from the start; try smtps://%s", port, addr)},
		{"imaps", "check the host and port, and that this port takes TLS from the start"},
	}
	for _, tt := range tests {
		t.Run(tt.scheme, func(t *testing.T) {
			rep, err := Check(ctx(t), mustURL(t, tt.scheme, addr), Options{User: user, Token: tok, GreetingTimeout: 50 * time.Millisecond})
			if !errors.Is(err, errNoAnswer) {
				t.Fatalf("err = %v, want errNoAnswer\n%s", err, rep)
			}
			last := rep.Steps[len(rep.Steps)-1]
			if !strings.Contains(last.Hint, tt.wantHint) || !strings.Contains(last.Error, "the server sent nothing within 50ms") {
				t.Errorf("last step %+v\nwant hint %q and the timeout in the error", last, tt.wantHint)
			}
		})
	}
}

// TestTLSURLOnPlainPort checks the hint for imaps:// aimed at a port that
// greets in plain text (a STARTTLS port).
func TestTLSURLOnPlainPort(t *testing.T) {
	addr, _ := scriptServer(t, []step{{Send: []string{"* OK IMAP4rev1 ready"}}}, nil)
	rep, err := Check(ctx(t), mustURL(t, "imaps", addr), Options{User: user, Token: tok})
	if err == nil {
		t.Fatalf("imaps on a plain port worked:\n%s", rep)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if last.Name != "tls" || !strings.Contains(last.Hint, "use imap:// for a STARTTLS port") {
		t.Errorf("last step %+v, want a tls failure hinting at imap://", last)
	}
}

// TestServerStopsAnswering checks a server that greets and then never
// answers AUTHENTICATE: the check ends with ctx, and the report says the
// time ran out instead of "use of closed network connection" alone.
func TestServerStopsAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n")
		held <- c // never answers
	}()
	defer func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	}()
	c, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	rep, err := Check(c, mustURL(t, "imap+insecure", ln.Addr().String()), Options{User: user, Token: tok})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded\n%s", err, rep)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if last.Name != "authenticate" || !strings.Contains(last.Error, "context deadline exceeded") || !strings.Contains(last.Hint, "stopped answering") {
		t.Errorf("last step %+v, want authenticate ended by the deadline with its hint", last)
	}
	if strings.Contains(last.Error, tok) {
		t.Errorf("token in the error: %s", last.Error)
	}
}

// FuzzParseURL: server URLs come from config files and flags; parsing
// never panics, every error is a *URLError, and a parsed server's URL
// parses back to the same server.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"imaps://outlook.office365.com", "smtp://h:587", "pop3+insecure://[::1]:1100", "imap+insecure://10.0.0.1", "imaps://u@h/x?y#z", "imaps://h:99999", "imaps://", "%", "mailto:a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		srv, err := ParseURL(raw)
		if err != nil {
			if _, ok := errors.AsType[*URLError](err); !ok {
				t.Fatalf("ParseURL(%q) error %T, want *URLError", raw, err)
			}
			return
		}
		if again, err := ParseURL(srv.URL()); err != nil || again != srv {
			t.Fatalf("ParseURL(%q).URL() = %q parses to %+v, %v", raw, srv.URL(), again, err)
		}
	})
}
