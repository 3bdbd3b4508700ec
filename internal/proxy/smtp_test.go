package proxy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const smtpGreeting = "220 proxy.test ESMTP mailoauth proxy ready"

func TestSMTP(t *testing.T) {
	tests := []struct {
		name     string
		script   []string
		loggedIn bool
	}{
		{"ehlo helo noop rset quit", []string{
			"> EHLO client.test",
			"< 250-proxy.test",
			"< 250 AUTH PLAIN LOGIN",
			"> HELO client.test",
			"< 250 proxy.test",
			"> NOOP",
			"< 250 2.0.0 OK",
			"> RSET",
			"< 250 2.0.0 OK",
			"> QUIT",
			"< 221 2.0.0 Bye",
			"<EOF",
		}, false},
		{"before login", []string{
			"> MAIL FROM:<" + testEmail + ">",
			"< 530 5.7.0 Authentication required",
			"> EHLO",
			"< 501 5.5.4 EHLO needs a domain",
			"> STARTTLS",
			"< 502 5.5.1 STARTTLS not available",
			"> AUTH CRAM-MD5",
			"< 504 5.5.4 Unsupported authentication mechanism",
			"> AUTH",
			"< 501 5.5.4 AUTH needs a mechanism",
			"> WHAT",
			"< 500 5.5.2 Unrecognized command",
			"> AUTH PLAIN",
			"< 334 ",
			"> *",
			"< 501 5.0.0 Authentication cancelled",
			"> AUTH PLAIN ####",
			"< 501 5.5.2 Invalid SASL PLAIN response",
			"> AUTH LOGIN",
			"< 334 VXNlcm5hbWU6",
			"> not base64!",
			"< 501 5.5.2 Invalid base64",
		}, false},
		{"AUTH PLAIN one line", []string{
			"> EHLO client.test",
			"< 250-proxy.test",
			"< 250 AUTH PLAIN LOGIN",
			"> AUTH PLAIN " + plainIR(testEmail, testPass),
			"< 235 2.7.0 Authentication successful",
		}, true},
		{"AUTH PLAIN two steps", []string{
			"> AUTH PLAIN",
			"< 334 ",
			"> " + plainIR(testEmail, testPass),
			"< 235 2.7.0 Authentication successful",
		}, true},
		{"AUTH LOGIN", []string{
			"> AUTH LOGIN",
			"< 334 VXNlcm5hbWU6",
			"> " + b64s(testEmail),
			"< 334 UGFzc3dvcmQ6",
			"> " + b64s(testPass),
			"< 235 2.7.0 Authentication successful",
		}, true},
		{"AUTH LOGIN with initial user name", []string{
			"> AUTH LOGIN " + b64s(testEmail),
			"< 334 UGFzc3dvcmQ6",
			"> " + b64s(testPass),
			"< 235 2.7.0 Authentication successful",
		}, true},
		{"AUTH LOGIN cancelled at the password", []string{
			"> AUTH LOGIN " + b64s(testEmail),
			"< 334 UGFzc3dvcmQ6",
			"> *",
			"< 501 5.0.0 Authentication cancelled",
		}, false},
		{"wrong password", []string{
			"> AUTH LOGIN " + b64s(testEmail),
			"< 334 UGFzc3dvcmQ6",
			"> " + b64s("wrong"),
			"< 535 5.7.8 Authentication credentials invalid",
		}, false},
		{"line too long", []string{
			"> AUTH PLAIN " + strings.Repeat("A", DefaultMaxLine),
			"< 500 5.5.6 Line too long",
			"<EOF",
		}, false},
		{"AUTH LOGIN password too long", []string{
			"> AUTH LOGIN " + b64s(testEmail),
			"< 334 UGFzc3dvcmQ6",
			"> " + strings.Repeat("A", DefaultMaxLine),
			"< 500 5.5.6 Line too long",
			"<EOF",
		}, false},
		{"too many errors", []string{
			">raw " + strings.Repeat("DATA\r\n", 10),
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 530 5.7.0 Authentication required",
			"< 421 4.7.0 Too many errors, closing",
			"<EOF",
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "smtp", nil)
			c := e.dial()
			c.run("< " + smtpGreeting)
			c.run(tt.script...)
			if !tt.loggedIn {
				if _, n, _ := e.counts(); n != 0 {
					t.Errorf("%d token requests, want 0", n)
				}
				return
			}
			c.run("> MAIL FROM:<"+testEmail+">", "< 250 MAIL relayed", "> QUIT", "< 221 2.0.0 Bye", "<EOF")
			logins, _, after := e.fake.stats()
			if logins != 1 {
				t.Errorf("upstream logins = %d, want 1", logins)
			}
			if diff := cmp.Diff([]string{"MAIL FROM:<" + testEmail + ">", "QUIT"}, after); diff != "" {
				t.Errorf("relayed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSMTPEHLORelaysUpstream(t *testing.T) {
	e := newEnv(t, "smtp", nil)
	probe(t, e)
	e.dial().run("< "+smtpGreeting,
		"> EHLO client.test",
		"< 250-proxy.test",
		"< 250-PIPELINING",
		"< 250-SIZE 1000000",
		"< 250-8BITMIME",
		"< 250 AUTH PLAIN LOGIN",
	)
}

func TestSMTPUpstreamRejectsToken(t *testing.T) {
	e := newEnv(t, "smtp", nil)
	e.token = "expired-token"
	e.dial().run("< "+smtpGreeting,
		"> AUTH PLAIN "+plainIR(testEmail, testPass),
		"< 454 4.7.0 The mail server refused the account's token; see the proxy's log",
		"> QUIT", "< 221 2.0.0 Bye",
	)
	_, acks, _ := e.fake.stats()
	if diff := cmp.Diff([]string{""}, acks); diff != "" {
		t.Errorf("challenge acknowledgement (-want +got):\n%s", diff)
	}
	if _, _, rej := e.counts(); !cmp.Equal(rej, []string{"work"}) {
		t.Errorf("Rejected calls = %v, want [work]", rej)
	}
}
