package proxy

import (
	"bufio"
	"bytes"
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

// FuzzSessions drives whole pre-login sessions of each protocol with
// arbitrary client bytes over a pipe: no panic, every session ends, and
// no token is ever asked for without the right password.
func FuzzSessions(f *testing.F) {
	for _, s := range []string{
		"a LOGIN x y\r\na LOGOUT\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\n",
		"USER x\r\nPASS y\r\nAUTH PLAIN\r\n%%%\r\nQUIT\r\n",
		"EHLO x\r\nAUTH LOGIN\r\neA==\r\neQ==\r\nAUTH PLAIN ===\r\nQUIT\r\n",
		"AUTH LOGIN\r\n!!\r\n",
		"a LOGIN {5}\r\n",
	} {
		for _, p := range []uint8{0, 1, 2} {
			f.Add(p, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, proto uint8, data []byte) {
		protos := []string{"imap", "pop3", "smtp"}
		tokens := 0
		srv, err := New(Config{
			Protocol:  protos[int(proto)%3],
			Accounts:  []Account{{Name: "work", Email: testEmail, Upstream: mustURL(t, protos[int(proto)%3]+"+insecure://127.0.0.1:1")}},
			Token:     func(ctx2 ctxT, a, p string) (string, error) { tokens++; return "", errors.New("no") },
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
	})
}
