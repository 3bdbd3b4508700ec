package exchange

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func FuzzParsePOPCommand(f *testing.F) {
	for _, s := range []string{"CAPA", "AUTH XOAUTH2", "AUTH XOAUTH2 dXNlcj0=", "RETR 1", "TOP 1 10", "LIST  2", "", "X", "QUIT\x00", "ÄÖÜ 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := ParsePOPCommand(line)
		if err != nil {
			return
		}
		if len(cmd.Name) < 3 || len(cmd.Name) > 4 || strings.ToUpper(cmd.Name) != cmd.Name {
			t.Fatalf("bad keyword %q from %q", cmd.Name, line)
		}
		for _, a := range cmd.Args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("bad argument %q from %q", a, line)
			}
		}
	})
}

func FuzzParseXOAUTH2(f *testing.F) {
	for _, s := range []string{"user=a@b\x01auth=Bearer t\x01\x01", "user=\x01\x01", "\x01\x01", "", "user=a\x01auth=bearer \x01\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, tok, err := ParseXOAUTH2(b)
		if err != nil {
			return
		}
		if u == "" || tok == "" || strings.ContainsAny(u, "\x01") || strings.ContainsAny(tok, "\x01 ") {
			t.Fatalf("accepted %q as user %q token %q", b, u, tok)
		}
		if string(b) != "user="+u+"\x01auth="+string(b[len("user=")+len(u)+len("\x01auth="):][:7])+tok+"\x01\x01" {
			t.Fatalf("round trip of %q", b)
		}
	})
}

func FuzzParseOAuthBearer(f *testing.F) {
	for _, s := range []string{"n,a=a@b,\x01host=h\x01port=993\x01auth=Bearer t\x01\x01", "n,,\x01auth=Bearer t\x01\x01", "n,a=x,\x01port=\x01\x01", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ob, err := ParseOAuthBearer(b)
		if err == nil && ob.Token == "" {
			t.Fatalf("accepted %q without a token", b)
		}
	})
}

// FuzzPOP3Session feeds arbitrary client input to an unauthenticated POP3
// session: it must never panic or hang, and every reply line must be a
// POP3 status or continuation.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{"CAPA\r\nQUIT\r\n", "USER a\r\nPASS b\r\n", "AUTH XOAUTH2\r\n*\r\n", "AUTH XOAUTH2\r\nAAAA\r\nSTAT\r\n", "RETR 1\r\nDELE x\r\n", "\r\n\r\n"} {
		f.Add(s)
	}
	e := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, in string) {
		c, s := net.Pipe()
		done := make(chan struct{})
		go func() { defer close(done); e.servePOP3(s) }()
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, in+"\r\nQUIT\r\n")
		}()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-ERR") && line != ".\r\n" && !isCapaLine(line) {
				t.Fatalf("unexpected reply line %q", line)
			}
			if strings.HasPrefix(line, "+OK Microsoft Exchange Server POP3 server signing off.") {
				break
			}
		}
		c.Close()
		<-done
	})
}

func isCapaLine(l string) bool {
	switch strings.TrimRight(l, "\r\n") {
	case "TOP", "UIDL", "USER", "SASL XOAUTH2", "SASL XOAUTH2 OAUTHBEARER":
		return true
	}
	return false
}
