package mailclient

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// step is one exchange of a scripted server: lines it sends ("<tls>"
// starts server-side TLS), then the one line it expects from the client.
// expect "" reads nothing; "<data>" reads a DATA body up to "." and
// records it as one entry.
type step struct {
	send   []string
	expect string
}

type scriptResult struct {
	lines []string
	data  string
}

func scriptServer(t *testing.T, script []step, tlsConf *tls.Config) (string, <-chan scriptResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan scriptResult, 1)
	go func() {
		var res scriptResult
		defer func() { ch <- res }()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { conn.Close() }()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		for _, s := range script {
			for _, l := range s.send {
				if l == "<tls>" {
					tc := tls.Server(conn, tlsConf)
					if err := tc.Handshake(); err != nil {
						res.lines = append(res.lines, "tls: "+err.Error())
						return
					}
					conn, r = tc, bufio.NewReader(tc)
					continue
				}
				conn.Write([]byte(l + "\r\n"))
			}
			switch s.expect {
			case "":
				continue
			case "<data>":
				var b strings.Builder
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						res.lines = append(res.lines, "read error: "+err.Error())
						return
					}
					if line == ".\r\n" {
						break
					}
					b.WriteString(line)
				}
				res.data = b.String()
				res.lines = append(res.lines, "<data>")
				continue
			}
			line, err := r.ReadString('\n')
			if err != nil {
				res.lines = append(res.lines, "read error: "+err.Error())
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				line = "<empty>"
			}
			res.lines = append(res.lines, line)
		}
	}()
	return ln.Addr().String(), ch
}

func expected(script []step) []string {
	var want []string
	for _, s := range script {
		if s.expect != "" {
			want = append(want, s.expect)
		}
	}
	return want
}

func mustURL(t *testing.T, scheme, addr string) Server {
	t.Helper()
	s, err := ParseURL(scheme + "://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stepNames(r *Report) []string {
	var out []string
	for _, s := range r.Steps {
		name := s.Name
		if !s.OK {
			name += "!"
		}
		out = append(out, name)
	}
	return out
}
