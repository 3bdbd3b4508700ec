package mailclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/google/go-cmp/cmp"
)

func TestIMAPCommand(t *testing.T) {
	tests := []struct {
		name     string
		server   string
		wantCaps map[string]bool
		wantErr  *imap.Error
	}{
		{"capability", "* CAPABILITY IMAP4rev1 STARTTLS\r\n* OK noise\r\nS1 OK done\r\n", map[string]bool{"IMAP4REV1": true, "STARTTLS": true}, nil},
		{"caps in OK code", "S1 OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] done\r\n", map[string]bool{"IMAP4REV1": true, "AUTH=XOAUTH2": true}, nil},
		{"no with code", "S1 NO [UNAVAILABLE] try later\r\n", nil, &imap.Error{Type: "NO", Code: "UNAVAILABLE", Text: "try later"}},
		{"bad", "S1 BAD Unknown command\r\n", nil, &imap.Error{Type: "BAD", Text: "Unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent bytes.Buffer
			caps, err := imapCommand(&sent, bufio.NewReader(strings.NewReader(tt.server)), "S1", "CAPABILITY")
			if sent.String() != "S1 CAPABILITY\r\n" {
				t.Errorf("sent %q", sent.String())
			}
			if tt.wantErr != nil {
				var ie *imap.Error
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v", err)
				}
				if diff := cmp.Diff(tt.wantErr, ie); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantCaps, caps); diff != "" {
				t.Errorf("caps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSASLEmptyFix(t *testing.T) {
	var out bytes.Buffer
	c := &saslEmptyFix{Conn: fakeConn{&out}}
	for _, w := range []string{"T1 AUTHENTICATE XOAUTH2 =\r\n", "=\r\n", "AQ==\r\n"} {
		if n, err := c.Write([]byte(w)); err != nil || n != len(w) {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if want := "T1 AUTHENTICATE XOAUTH2 =\r\n\r\nAQ==\r\n"; out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

// fakeConn records writes; the rest of net.Conn is never called.
type fakeConn struct{ w io.Writer }

func (f fakeConn) Write(p []byte) (int, error) { return f.w.Write(p) }

func (fakeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return nil }
func (fakeConn) RemoteAddr() net.Addr             { return nil }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

func FuzzIMAPPreTLS(f *testing.F) {
	f.Add([]byte("* CAPABILITY IMAP4rev1 STARTTLS\r\nS1 OK done\r\n"))
	f.Add([]byte("S1 NO [UNAVAILABLE] x\r\n"))
	f.Add([]byte("S1 OK [CAPABILITY IMAP4rev1\r\n"))
	f.Add([]byte("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		if line, err := readIMAPLine(r); err == nil {
			if len(line) > maxPreTLSLine {
				t.Fatal("line over the cap")
			}
			capsFromText(line)
		}
		imapCommand(io.Discard, bufio.NewReaderSize(bytes.NewReader(data), 4096), "S1", "CAPABILITY")
	})
}
