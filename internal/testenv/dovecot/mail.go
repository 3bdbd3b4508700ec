package dovecot

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/emersion/go-smtp"
)

// Deliver puts msg into user's INBOX over LMTP (the way a mail server's
// delivery agent would), so tests can read it back over IMAP and POP3.
func (s *Server) Deliver(t testing.TB, from, user string, msg []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.LMTP)))
	if err != nil {
		t.Fatalf("lmtp: %v", err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		t.Fatalf("lmtp lhlo: %v", err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("lmtp mail: %v", err)
	}
	if err := c.Rcpt(user, nil); err != nil {
		t.Fatalf("lmtp rcpt: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("lmtp data: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("lmtp data: %v", err)
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		t.Fatalf("lmtp delivery to %s: %v", user, err)
	}
	c.Quit()
}

// Relayed returns the messages Dovecot's submission service relayed to
// smtp-sink so far, oldest first, each with smtp-sink's X-… envelope
// headers in front.
func (s *Server) Relayed(t testing.TB) [][]byte {
	t.Helper()
	entries, err := os.ReadDir(s.sinkDir)
	if err != nil {
		t.Fatalf("read sink dir: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(s.sinkDir, n))
		if err != nil {
			t.Fatalf("read relayed message: %v", err)
		}
		out = append(out, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	}
	return out
}

// String names the instance for logs.
func (s *Server) String() string {
	return fmt.Sprintf("dovecot(imap %d/%d pop3 %d/%d submission %d/%d)", s.IMAP, s.IMAPS, s.POP3, s.POP3S, s.Submission, s.Submissions)
}
