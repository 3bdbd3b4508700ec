package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzIMAPCommand feeds arbitrary bytes to the pre-login IMAP command
// reader: it must never panic, never hand back more literal octets than the
// cap, and never read a line longer than the cap.
func FuzzIMAPCommand(f *testing.F) {
	for _, s := range []string{
		"a1 LOGIN user pass\r\n",
		"a1 LOGIN \"us\\\"er\" \"pa\\\\ss\"\r\n",
		"a1 LOGIN {4}\r\nuser {4+}\r\npass\r\n",
		"a1 LOGIN {99999999999}\r\n",
		"a1 AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n",
		"a1 ID (\"name\" {3+}\r\nfoo)\r\n",
		"* BAD\r\n",
		"a1 LOGIN {0}\r\n {0}\r\n\r\n",
		"a1 ID {0+}\r\n " + strings.Repeat("x", 200) + " {0+}\r\n " + strings.Repeat("y", 200) + "\r\n",
		"a1 ID (" + strings.Repeat("{0+}\r\n ", 120) + ")\r\n",
		"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 64)
		ir := &imapReader{r: r, maxLine: 256, maxLiteral: 128,
			cont:     func() error { return nil },
			readLine: func() (string, error) { return readLine(r, 256) },
		}
		for range 100 {
			cmd, err := ir.read()
			if err != nil && !errors.Is(err, errBadSyntax) {
				return
			}
			if err == nil {
				total := 0
				for _, a := range cmd.args {
					total += len(a)
				}
				if total > 256+128 {
					t.Fatalf("command holds %d octets", total)
				}
				if len(cmd.args) > maxArgs {
					t.Fatalf("command holds %d arguments", len(cmd.args))
				}
				if !validTag(cmd.tag) || cmd.name == "" {
					t.Fatalf("accepted tag %q name %q", cmd.tag, cmd.name)
				}
			}
		}
	})
}

// FuzzDecodePlain checks the SASL PLAIN decoder on arbitrary input.
func FuzzDecodePlain(f *testing.F) {
	for _, s := range []string{plainIR("u", "p"), b64s("a\x00b\x00c"), "=", "", "!!!", b64s("\x00\x00"), b64s("x\x00u\x00p")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, p, err := decodePlain(s)
		if err != nil {
			return
		}
		if u == "" || strings.Contains(u, "\x00") || strings.Contains(p, "\x00") {
			t.Fatalf("decoded %q %q", u, p)
		}
	})
}

// fuzzSession drives one whole pre-login session of proto with arbitrary
// client bytes over a pipe: no panic, the session ends, and no token is
// ever asked for without the right password.
func fuzzSession(t *testing.T, proto string, data []byte) {
	tokens := 0
	srv, err := New(Config{
		Protocol:  proto,
		Accounts:  []Account{{Name: "work", Email: testEmail, Upstream: mustURL(t, proto+"+insecure://127.0.0.1:1")}},
		Token:     func(ctxT, string, string) (string, error) { tokens++; return "", errors.New("no") },
		Passwords: fastVerifier{},
		Delay:     func(ctxT, time.Duration) error { return nil },
		MaxLine:   512, MaxLiteral: 256,
		Logger: discardLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	ss := &session{s: srv, conn: server, remote: "pipe"}
	done := make(chan struct{})
	go func() { defer close(done); ss.run() }()
	go func() { io.Copy(io.Discard, client) }()
	client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	client.Write(data)
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	if tokens != 0 {
		t.Fatal("a token was requested without the password")
	}
}

// FuzzIMAPSession: LOGIN/AUTHENTICATE/literals through the IMAP state
// machine.
func FuzzIMAPSession(f *testing.F) {
	for _, s := range []string{
		"a LOGIN x y\r\na LOGOUT\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\nb AUTHENTICATE PLAIN =\r\n",
		"a LOGIN {5}\r\n",
		"a LOGIN {3+}\r\nabc {2+}\r\nde\r\n",
		"a ID (\"x\" NIL)\r\na STARTTLS\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, "imap", data) })
}

// FuzzPOP3Session: USER/PASS, AUTH PLAIN and CAPA through the POP3 state
// machine.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{
		"USER x\r\nPASS y\r\nAUTH PLAIN\r\n%%%\r\nQUIT\r\n",
		"CAPA\r\nAUTH\r\nAUTH PLAIN =\r\nSTLS\r\n",
		"PASS\r\nUSER\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, "pop3", data) })
}

// FuzzSMTPSession: EHLO, AUTH PLAIN and AUTH LOGIN through the SMTP state
// machine.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nAUTH LOGIN\r\neA==\r\neQ==\r\nAUTH PLAIN ===\r\nQUIT\r\n",
		"AUTH LOGIN\r\n!!\r\n",
		"AUTH LOGIN eA==\r\n*\r\nAUTH PLAIN\r\n*\r\n",
		"HELO x\r\nMAIL FROM:<a>\r\nRSET\r\nNOOP\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSession(t, "smtp", data) })
}

// FuzzUpstreamLogin feeds arbitrary server bytes to the upstream login of
// each protocol: it must fail or succeed, never panic or hang.
func FuzzUpstreamLogin(f *testing.F) {
	for _, s := range []string{
		"* OK hi\r\nP1 OK\r\n+ eyJzdGF0dXMiOiI0MDEifQ==\r\nP2 NO [AUTHENTICATIONFAILED] x\r\n",
		"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi\r\n* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\nP1 OK\r\nP2 OK [CAPABILITY IMAP4rev1] in\r\n",
		"+OK hi\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n+ \r\n+ e30=\r\n-ERR [AUTH] no\r\n",
		"220 hi\r\n250-x\r\n250 AUTH XOAUTH2\r\n334 e30=\r\n535 no\r\n",
		"220-a\r\n220 b\r\n250 x\r\n235 ok\r\n",
	} {
		for p := range uint8(3) {
			f.Add(p, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, proto uint8, data []byte) {
		name := []string{"imap", "pop3", "smtp"}[proto%3]
		acct := &Account{Name: "work", Email: testEmail, Upstream: mustURL(t, name+"+insecure://127.0.0.1:1")}
		client, server := net.Pipe()
		go func() {
			go io.Copy(io.Discard, server)
			server.SetWriteDeadline(time.Now().Add(2 * time.Second))
			server.Write(data)
			server.Close()
		}()
		u := &upConn{acct: acct, conn: client, r: bufio.NewReaderSize(client, 512)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stop := context.AfterFunc(ctx, func() { client.Close() })
		defer stop()
		switch name {
		case "imap":
			u.imapLogin(ctx, "tok")
		case "pop3":
			u.pop3Login(ctx, "tok")
		case "smtp":
			u.smtpLogin(ctx, "tok", "h")
		}
		client.Close()
		if ctx.Err() != nil {
			t.Fatal("upstream login hung")
		}
	})
}
