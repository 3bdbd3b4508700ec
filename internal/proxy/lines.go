package proxy

import (
	"bufio"
	"errors"
	"io"
)

// Limits on what a client may send before it has logged in. Nothing a
// password-only client needs before login comes near them; they exist so a
// hostile local process cannot make the proxy buffer without bound.
const (
	// DefaultMaxLine caps one command line (CRLF included). RFC 7162 §4
	// asks IMAP servers to take lines of at least 8,192 octets; SMTP
	// (RFC 5321 §4.5.3.1.4, plus AUTH's long initial responses) and POP3
	// (RFC 2449 §4, 255) need less.
	DefaultMaxLine = 8192
	// DefaultMaxLiteral caps the octets of all IMAP literals in one
	// command before login (a LOGIN user name and password).
	DefaultMaxLiteral = 4096
	// maxUpstreamLine caps one line read from the upstream server before
	// the relay starts (greeting, CAPABILITY, EHLO, the login answer).
	maxUpstreamLine = 64 << 10
)

// errLineTooLong is a line over the cap.
var errLineTooLong = errors.New("line too long")

// readLine reads one line of at most max octets (terminator included) and
// returns it without its CRLF (a bare LF is accepted too, as most servers
// do). It never holds more than max octets: bufio.Reader.ReadSlice fails
// with ErrBufferFull rather than grow, so an endless line costs one buffer.
// textproto.Reader would do the reading, but it has no length cap.
func readLine(r *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return "", errLineTooLong
		}
		switch {
		case err == nil:
			if buf == nil {
				return trimEOL(frag), nil
			}
			buf = append(buf, frag...)
			return trimEOL(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, frag...)
		case errors.Is(err, io.EOF) && len(buf)+len(frag) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

func trimEOL(b []byte) string {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
		if n > 0 && b[n-1] == '\r' {
			n--
		}
	}
	return string(b[:n])
}
