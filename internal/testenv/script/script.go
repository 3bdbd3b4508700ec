// Package script runs a scripted line-protocol server on 127.0.0.1 for wire
// tests of our mail clients: it sends the lines a real server would and
// records exactly what the client answered, so a test can compare them with
// the lines it expected. The SASL, POP3 and mail-client tests share it.
package script

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// Step is one exchange: the lines the server sends, then the one line it
// reads from the client.
//
// In Send, "<tls>" starts server-side TLS at that point (with the config
// given to Serve). Expect "" reads nothing; "<empty>" stands for an empty
// line; "<data>" reads an SMTP DATA body up to the lone "." and records it
// as Result.Data.
type Step struct {
	Send   []string
	Expect string
}

// Result is what the client sent: one entry per step that expected a line
// (or a "read error: …" / "tls: …" entry where the script broke off), and the
// DATA body if a step read one.
type Result struct {
	Lines []string
	Data  string
}

// Serve serves one connection following steps and delivers the Result on
// the returned channel when the script ends or the client goes away.
func Serve(t testing.TB, steps []Step, tlsConf *tls.Config) (addr string, done <-chan Result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan Result, 1)
	go func() {
		var res Result
		defer func() { ch <- res }()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { conn.Close() }()
		// A client that stops talking must fail the test, not hang it.
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		for _, s := range steps {
			for _, l := range s.Send {
				if l == "<tls>" {
					tc := tls.Server(conn, tlsConf)
					if err := tc.Handshake(); err != nil {
						res.Lines = append(res.Lines, "tls: "+err.Error())
						return
					}
					conn, r = tc, bufio.NewReader(tc)
					continue
				}
				if _, err := conn.Write([]byte(l + "\r\n")); err != nil {
					return
				}
			}
			switch s.Expect {
			case "":
				continue
			case "<data>":
				var b strings.Builder
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						res.Lines = append(res.Lines, "read error: "+err.Error())
						return
					}
					if line == ".\r\n" {
						break
					}
					b.WriteString(line)
				}
				res.Data = b.String()
				res.Lines = append(res.Lines, "<data>")
				continue
			}
			line, err := r.ReadString('\n')
			if err != nil {
				res.Lines = append(res.Lines, "read error: "+err.Error())
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				line = "<empty>"
			}
			res.Lines = append(res.Lines, line)
		}
	}()
	return ln.Addr().String(), ch
}

// ServeLines is Serve for tests that only compare the client's lines.
func ServeLines(t testing.TB, steps []Step, tlsConf *tls.Config) (addr string, done <-chan []string) {
	t.Helper()
	addr, res := Serve(t, steps, tlsConf)
	lines := make(chan []string, 1)
	go func() { lines <- (<-res).Lines }()
	return addr, lines
}

// Expected lists the lines the steps expect from the client, in order: what
// a test compares Result.Lines with.
func Expected(steps []Step) []string {
	var want []string
	for _, s := range steps {
		if s.Expect != "" {
			want = append(want, s.Expect)
		}
	}
	return want
}
