package mailclient

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// This file holds the two places where we speak IMAP below go-imap v2
// (beta.8), each for a reason go-imap cannot cover:
//
//  1. STARTTLS: imapclient.NewStartTLS sends STARTTLS without looking at
//     the capabilities, so it cannot tell "not offered" from other failures,
//     and the connection it builds writes through TLS above our conn (see
//     2). We do the pre-TLS exchange ourselves (greeting, CAPABILITY,
//     STARTTLS), hand go-imap the TLS connection and a synthetic greeting.
//  2. Empty SASL responses: go-imap encodes an empty continuation response
//     as "=" (RFC 4959's notation for an empty *initial* response). Dovecot
//     answers that with "BAD Invalid base64 data in continued response"
//     instead of its final NO, so the XOAUTH2 error-challenge
//     acknowledgement (an empty response, per Google's and Microsoft's
//     docs) needs the empty line RFC 3501 §6.2.2 prescribes.

// saslEmptyFix rewrites a write of exactly "=\r\n" (go-imap's whole-line
// flush of an empty SASL response) to "\r\n". No other IMAP line can be
// just "=": every command starts with a tag.
type saslEmptyFix struct {
	net.Conn
	r io.Reader // when set, reads come from here (synthetic greeting first)
}

func (c *saslEmptyFix) Write(p []byte) (int, error) {
	if string(p) == "=\r\n" {
		if _, err := c.Conn.Write([]byte("\r\n")); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *saslEmptyFix) Read(p []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// maxPreTLSLine caps lines read before TLS (greeting, CAPABILITY).
const maxPreTLSLine = 16 << 10

// imapStartTLS runs greeting, CAPABILITY and STARTTLS on conn, refusing
// with errNoStartTLS when the server does not offer STARTTLS, and returns
// the TLS connection with a synthetic greeting in front for go-imap (which
// then asks for the capabilities again, as RFC 3501 §6.2.1 requires).
func imapStartTLS(conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	r := bufio.NewReaderSize(conn, 4096)
	greeting, err := readIMAPLine(r)
	if err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	switch {
	case strings.HasPrefix(greeting, "* PREAUTH"):
		// RFC 3501 §6.2.1: a PREAUTH before STARTTLS leaves no way to
		// protect the session.
		return nil, errors.New("server sent PREAUTH on a connection that must use STARTTLS")
	case !strings.HasPrefix(greeting, "* OK"):
		return nil, fmt.Errorf("unexpected greeting %q", capLine(greeting))
	}
	caps := capsFromText(strings.TrimPrefix(greeting, "* OK"))
	if caps == nil {
		if caps, err = imapCommand(conn, r, "S1", "CAPABILITY"); err != nil {
			return nil, err
		}
	}
	if !caps["STARTTLS"] {
		return nil, errNoStartTLS
	}
	if _, err := imapCommand(conn, r, "S2", "STARTTLS"); err != nil {
		return nil, err
	}
	if r.Buffered() > 0 {
		return nil, errors.New("server sent data before the TLS handshake")
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return &saslEmptyFix{Conn: tc, r: io.MultiReader(strings.NewReader("* OK TLS started\r\n"), tc)}, nil
}

// imapCommand sends "tag cmd" and reads to the tagged reply; capabilities
// seen in untagged CAPABILITY lines are returned. A NO or BAD reply is an
// *imap.Error, so reports show it like go-imap's.
func imapCommand(w io.Writer, r *bufio.Reader, tag, cmd string) (map[string]bool, error) {
	if _, err := io.WriteString(w, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	caps := map[string]bool{}
	for {
		line, err := readIMAPLine(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.ToLower(cmd), err)
		}
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			for _, c := range strings.Fields(rest) {
				caps[strings.ToUpper(c)] = true
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue // other untagged data
		}
		typ, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(typ) {
		case "OK":
			if c := capsFromText(text); c != nil {
				caps = c
			}
			return caps, nil
		case "NO", "BAD":
			e := &imap.Error{Type: imap.StatusResponseType(strings.ToUpper(typ)), Text: text}
			if code, t, ok := strings.Cut(strings.TrimPrefix(text, "["), "] "); ok && strings.HasPrefix(text, "[") {
				e.Code, e.Text = imap.ResponseCode(code), t
			}
			return nil, e
		default:
			return nil, fmt.Errorf("%s: unexpected reply %q", strings.ToLower(cmd), capLine(line))
		}
	}
}

// capsFromText reads a "[CAPABILITY …]" response code at the start of
// text; nil when there is none.
func capsFromText(text string) map[string]bool {
	text = strings.TrimSpace(text)
	rest, ok := strings.CutPrefix(strings.ToUpper(text), "[CAPABILITY ")
	if !ok {
		return nil
	}
	list, _, ok := strings.Cut(rest, "]")
	if !ok {
		return nil
	}
	caps := map[string]bool{}
	for _, c := range strings.Fields(list) {
		caps[c] = true
	}
	return caps
}

func readIMAPLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxPreTLSLine {
			return "", errors.New("server line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		return string(bytes.TrimRight(line, "\r\n")), nil
	}
}

func capLine(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
