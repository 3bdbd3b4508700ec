package pop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/testenv/script"
	"github.com/mailoauth/mailoauth/internal/testenv/testtls"
	"github.com/mailoauth/mailoauth/sasl"
)

// step is one exchange of the scripted server (internal/testenv/script).
type step = script.Step

// scriptServer serves one connection on 127.0.0.1:0 following steps; a
// "<tls>" line in a step's Send switches to TLS with tlsConf.
func scriptServer(t *testing.T, steps []step, tlsConf *tls.Config) (string, <-chan []string) {
	t.Helper()
	return script.ServeLines(t, steps, tlsConf)
}

func expected(steps []step) []string { return script.Expected(steps) }

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const (
	tok  = "tok-123"
	xoIR = "dXNlcj1hbGljZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgdG9rLTEyMwEB"
)

func TestAuth(t *testing.T) {
	xo := func() sasl.Client { return sasl.NewXOAUTH2Client(sasl.Options{User: "alice@example.test", Token: tok}) }
	ob := func() sasl.Client {
		return sasl.NewOAuthBearerClient(sasl.Options{User: "alice@example.test", Token: tok})
	}
	obIR := sasl.OAuthBearerInitialResponse(sasl.Options{User: "alice@example.test", Token: tok})
	tests := []struct {
		name       string
		client     sasl.Client
		opts       AuthOptions
		script     []step
		wantErr    string // exact Reply() of the *Error, "" for success
		wantStatus string
	}{
		{"exchange two-step success", xo(), AuthOptions{}, []step{
			{Send: []string{"+OK The Microsoft Exchange POP3 service is ready. [UABSADAAUAAyADIAMQ==]"}, Expect: "AUTH XOAUTH2"},
			{Send: []string{"+"}, Expect: xoIR},
			{Send: []string{"+OK User successfully authenticated."}},
		}, "", ""},
		{"exchange failure", xo(), AuthOptions{}, []step{
			{Send: []string{"+OK ready"}, Expect: "AUTH XOAUTH2"},
			{Send: []string{"+ "}, Expect: xoIR},
			{Send: []string{"-ERR Authentication failure: unknown user name or bad password."}},
		}, "-ERR Authentication failure: unknown user name or bad password.", ""},
		{"dovecot xoauth2 error challenge", xo(), AuthOptions{}, []step{
			{Send: []string{"+OK Dovecot (Debian) ready."}, Expect: "AUTH XOAUTH2"},
			{Send: []string{"+ "}, Expect: xoIR},
			{Send: []string{"+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="}, Expect: "<empty>"},
			{Send: []string{"-ERR [AUTH] Authentication failed."}},
		}, "-ERR [AUTH] Authentication failed.", "401"},
		{"dovecot oauthbearer error challenge, initial response", ob(), AuthOptions{InitialResponse: true}, []step{
			{Send: []string{"+OK Dovecot (Debian) ready."}, Expect: "AUTH OAUTHBEARER " + obIR},
			{Send: []string{"+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0="}, Expect: "AQ=="},
			{Send: []string{"-ERR [AUTH] Authentication failed."}},
		}, "-ERR [AUTH] Authentication failed.", "invalid_token"},
		{"malformed challenge cancels", xo(), AuthOptions{InitialResponse: true}, []step{
			{Send: []string{"+OK ready"}, Expect: "AUTH XOAUTH2 " + xoIR},
			{Send: []string{"+ !!!notbase64"}, Expect: "*"},
			{Send: []string{"-ERR cancelled"}},
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptServer(t, tt.script, nil)
			c := dial(t, addr)
			err := sasl.Result(tt.client, c.AuthWith(tt.client, tt.opts))
			c.Close()
			if diff := cmp.Diff(expected(tt.script), <-done); diff != "" {
				t.Errorf("client lines (-want +got):\n%s", diff)
			}
			if tt.name == "malformed challenge cancels" {
				if err == nil || !strings.Contains(err.Error(), "malformed challenge") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Auth: %v", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Reply() != tt.wantErr || pe.Command != "AUTH" {
				t.Fatalf("err = %v, want *Error with reply %q", err, tt.wantErr)
			}
			var ae *sasl.AuthError
			if got := errors.As(err, &ae); got != (tt.wantStatus != "") || (got && ae.Status != tt.wantStatus) {
				t.Errorf("err = %v, want AuthError status %q", err, tt.wantStatus)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

func TestMailboxCommands(t *testing.T) {
	script := []step{
		{Send: []string{"+OK ready"}, Expect: "CAPA"},
		{Send: []string{"+OK", "TOP", "UIDL", "SASL OAUTHBEARER XOAUTH2", "STLS", "."}, Expect: "USER alice"},
		{Send: []string{"+OK"}, Expect: "PASS pw"},
		{Send: []string{"+OK Logged in."}, Expect: "STAT"},
		{Send: []string{"+OK 2 330"}, Expect: "LIST"},
		{Send: []string{"+OK 2 messages:", "1 120", "2 210", "."}, Expect: "UIDL"},
		{Send: []string{"+OK", "1 000000014c8a4f29", "2 000000024c8a4f29", "."}, Expect: "RETR 2"},
		{Send: []string{"+OK 210 octets", "Subject: hi", "", "..leading dot", "."}, Expect: "DELE 1"},
		{Send: []string{"+OK Marked to be deleted."}, Expect: "RETR 9"},
		{Send: []string{"-ERR There's no message 9."}, Expect: "NOOP"},
		{Send: []string{"+OK"}, Expect: "QUIT"},
		{Send: []string{"+OK Logging out."}},
	}
	addr, done := scriptServer(t, script, nil)
	c := dial(t, addr)
	if got := c.Greeting(); got != "ready" {
		t.Errorf("Greeting = %q", got)
	}
	caps, err := c.Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]string{"TOP": {}, "UIDL": {}, "SASL": {"OAUTHBEARER", "XOAUTH2"}, "STLS": {}}, caps); diff != "" {
		t.Errorf("caps (-want +got):\n%s", diff)
	}
	if err := c.User("alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.Pass("pw"); err != nil {
		t.Fatal(err)
	}
	n, size, err := c.Stat()
	if err != nil || n != 2 || size != 330 {
		t.Fatalf("Stat = %d, %d, %v", n, size, err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]MessageInfo{{ID: 1, Size: 120}, {ID: 2, Size: 210}}, list); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	uids, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]MessageInfo{{ID: 1, UID: "000000014c8a4f29"}, {ID: 2, UID: "000000024c8a4f29"}}, uids); diff != "" {
		t.Errorf("UIDL (-want +got):\n%s", diff)
	}
	msg, err := c.Retr(2)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Subject: hi\r\n\r\n.leading dot\r\n"; string(msg) != want {
		t.Errorf("Retr = %q, want %q", msg, want)
	}
	if err := c.Dele(1); err != nil {
		t.Fatal(err)
	}
	_, err = c.Retr(9)
	var pe *Error
	if !errors.As(err, &pe) || pe.Text != "There's no message 9." || pe.Command != "RETR" {
		t.Errorf("Retr(9) err = %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(expected(script), <-done); diff != "" {
		t.Errorf("client lines (-want +got):\n%s", diff)
	}
}

func TestStartTLS(t *testing.T) {
	srvConf, roots := selfSigned(t)
	script := []step{
		{Send: []string{"+OK ready"}, Expect: "STLS"},
		{Send: []string{"+OK Begin TLS negotiation", "<tls>"}, Expect: "STAT"},
		{Send: []string{"+OK 0 0"}},
	}
	addr, done := scriptServer(t, script, srvConf)
	c := dial(t, addr)
	if err := c.StartTLS(&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Conn().(*tls.Conn); !ok {
		t.Error("Conn is not TLS after StartTLS")
	}
	if _, _, err := c.Stat(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(expected(script), <-done); diff != "" {
		t.Errorf("client lines (-want +got):\n%s", diff)
	}
}

func TestStartTLSRejectsInjectedData(t *testing.T) {
	script := []step{
		{Send: []string{"+OK ready"}, Expect: "STLS"},
		{Send: []string{"+OK Begin TLS\r\n+OK injected"}},
	}
	addr, _ := scriptServer(t, script, nil)
	c := dial(t, addr)
	err := c.StartTLS(&tls.Config{})
	if err == nil || !strings.Contains(err.Error(), "before the TLS handshake") {
		t.Fatalf("StartTLS err = %v, want refusal", err)
	}
}

func TestLineTooLong(t *testing.T) {
	c := &Client{r: bufio.NewReaderSize(strings.NewReader("+OK "+strings.Repeat("x", MaxLineLength)+"\r\n"), 4096)}
	if _, err := c.readStatus("STAT"); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
}

func TestMalformedReplies(t *testing.T) {
	for _, l := range []string{"", "OK", "+OKAY", "* hello", "-ERRx"} {
		if _, err := parseStatus("STAT", l); err == nil {
			t.Errorf("parseStatus(%q) accepted", l)
		}
	}
	for _, l := range []string{"", "1", "x y", "-1 5", "1 -5"} {
		if _, _, err := parseStat(l); err == nil {
			t.Errorf("parseStat(%q) accepted", l)
		}
	}
}

func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	cert, pool := testtls.Loopback(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pool
}

// FuzzReplies feeds arbitrary server bytes to the status and multi-line
// parsers and the value parsers built on them.
func FuzzReplies(f *testing.F) {
	f.Add([]byte("+OK 2 330\r\n"), true)
	f.Add([]byte("+OK\r\n1 120\r\n2 210\r\n.\r\n"), true)
	f.Add([]byte("+OK\r\nSASL OAUTHBEARER XOAUTH2\r\nSTLS\r\n.\r\n"), false)
	f.Add([]byte("-ERR [AUTH] Authentication failed.\r\n"), false)
	f.Add([]byte("+OK\r\n..x\r\n.\r\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, list bool) {
		c := &Client{r: bufio.NewReaderSize(bytes.NewReader(data), 4096)}
		text, err := c.readStatus("X")
		if err != nil {
			return
		}
		parseStat(text)
		lines, err := c.readMulti(1 << 16)
		if err != nil {
			return
		}
		parseCapa(lines)
		for _, l := range lines {
			if len(l) > MaxLineLength {
				t.Fatalf("line longer than the cap: %d", len(l))
			}
			if list {
				parseScanLine("list", string(l))
			}
		}
	})
}
