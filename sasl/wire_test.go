package sasl

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/testenv/script"
)

// step is one exchange of the scripted server (internal/testenv/script).
type step = script.Step

// scriptServer serves one connection on 127.0.0.1:0 following steps and
// reports the client lines it got on the returned channel once it ends.
func scriptServer(t *testing.T, steps []step) (addr string, done <-chan []string) {
	t.Helper()
	return script.ServeLines(t, steps, nil)
}

func expected(steps []step) []string { return script.Expected(steps) }

const (
	tok = "tok-123"
	// xoauth2 payload for alice@example.test / tok-123
	xoIR = "dXNlcj1hbGljZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgdG9rLTEyMwEB"
	// the Dovecot / Gmail style challenges from the reference, base64
	dovecotXO = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="
	dovecotOB = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0="
)

func TestWireIMAP(t *testing.T) {
	obIR := OAuthBearerInitialResponse(Options{User: "alice@example.test", Token: tok, Host: "127.0.0.1", Port: 143})
	greeting := "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER AUTH=XOAUTH2] ready"
	tests := []struct {
		name       string
		client     Client
		script     []step
		wantStatus string
	}{
		{"xoauth2 success", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{greeting}, Expect: "T1 AUTHENTICATE XOAUTH2 " + xoIR},
			{Send: []string{"T1 OK Logged in"}},
		}, ""},
		{"xoauth2 error challenge", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{greeting}, Expect: "T1 AUTHENTICATE XOAUTH2 " + xoIR},
			// go-imap encodes an empty response as "=" (RFC 4959 style);
			// mailclient turns it into the empty line Dovecot needs.
			{Send: []string{"+ " + dovecotXO}, Expect: "="},
			{Send: []string{"T1 NO [AUTHENTICATIONFAILED] Authentication failed."}},
		}, "401"},
		{"oauthbearer error challenge", NewOAuthBearerClient(Options{User: "alice@example.test", Token: tok, Host: "127.0.0.1", Port: 143}), []step{
			{Send: []string{greeting}, Expect: "T1 AUTHENTICATE OAUTHBEARER " + obIR},
			{Send: []string{"+ " + dovecotOB}, Expect: "AQ=="},
			{Send: []string{"T1 NO [AUTHENTICATIONFAILED] Authentication failed."}},
		}, "invalid_token"},
		{"no SASL-IR: two steps", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{"* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready"}, Expect: "T1 AUTHENTICATE XOAUTH2"},
			{Send: []string{"+ "}, Expect: xoIR},
			{Send: []string{"T1 NO AUTHENTICATE failed."}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptServer(t, tt.script)
			c, err := imapclient.DialInsecure(addr, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.WaitGreeting(); err != nil {
				t.Fatal(err)
			}
			err = Result(tt.client, c.Authenticate(tt.client))
			c.Close()
			if diff := cmp.Diff(expected(tt.script), <-done); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			checkOutcome(t, err, tt.wantStatus, tt.script)
			var ie *imap.Error
			if strings.Contains(tt.name, "error") && !errors.As(err, &ie) {
				t.Errorf("err %v does not wrap *imap.Error", err)
			}
		})
	}
}

func checkOutcome(t *testing.T, err error, wantStatus string, script []step) {
	t.Helper()
	lastLine := script[len(script)-1].Send[0]
	success := strings.Contains(lastLine, " OK ") || strings.HasPrefix(lastLine, "235")
	switch {
	case success && err != nil:
		t.Fatalf("auth failed: %v", err)
	case !success && err == nil:
		t.Fatal("auth succeeded, want failure")
	case wantStatus != "":
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Status != wantStatus {
			t.Fatalf("err = %v, want *AuthError with status %q", err, wantStatus)
		}
	case err != nil:
		var ae *AuthError
		if errors.As(err, &ae) {
			t.Fatalf("err = %v is an AuthError, but the server sent no challenge", err)
		}
	}
	if err != nil && strings.Contains(err.Error(), tok) {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestWireSMTP(t *testing.T) {
	obIR := OAuthBearerInitialResponse(Options{User: "alice@example.test", Token: tok})
	ehlo := []string{"250-mail.example.test", "250-AUTH OAUTHBEARER XOAUTH2", "250 ENHANCEDSTATUSCODES"}
	tests := []struct {
		name       string
		client     Client
		script     []step
		wantStatus string
	}{
		{"xoauth2 success", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: ehlo, Expect: "AUTH XOAUTH2 " + xoIR},
			{Send: []string{"235 2.7.0 Authentication successful"}},
		}, ""},
		{"xoauth2 error challenge (gmail style)", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: ehlo, Expect: "AUTH XOAUTH2 " + xoIR},
			{Send: []string{"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0="}, Expect: ""},
			{Send: []string{"535 5.7.8 Username and Password not accepted."}},
		}, "401"},
		{"oauthbearer error challenge", NewOAuthBearerClient(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: ehlo, Expect: "AUTH OAUTHBEARER " + obIR},
			{Send: []string{"334 " + dovecotOB}, Expect: "AQ=="},
			{Send: []string{"535 5.7.8 Authentication failed."}},
		}, "invalid_token"},
		{"exchange 535 5.7.3 without challenge", NewXOAUTH2Client(Options{User: "alice@example.test", Token: tok}), []step{
			{Send: []string{"220 mail.example.test ESMTP"}, Expect: "EHLO localhost"},
			{Send: ehlo, Expect: "AUTH XOAUTH2 " + xoIR},
			{Send: []string{"535 5.7.3 Authentication unsuccessful [X.prod.outlook.com]"}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An empty expected line is a real expectation here (the
			// XOAUTH2 ack); mark it so expected() keeps it.
			script := append([]step(nil), tt.script...)
			for i := range script {
				if script[i].Expect == "" && i < len(script)-1 && strings.HasPrefix(script[i].Send[0], "334") {
					script[i].Expect = "<empty>"
				}
			}
			addr, done := scriptServer(t, script)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c := smtp.NewClient(conn)
			err = Result(tt.client, c.Auth(tt.client))
			c.Close()
			if diff := cmp.Diff(expected(script), <-done); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			checkOutcome(t, err, tt.wantStatus, tt.script)
			var se *smtp.SMTPError
			if err != nil && !errors.As(err, &se) {
				t.Errorf("err %v does not wrap *smtp.SMTPError", err)
			}
		})
	}
}
