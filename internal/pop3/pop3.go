// Package pop3 is a small POP3 client (RFC 1939, CAPA/STLS of RFC 2449 and
// RFC 2595, AUTH of RFC 5034) for logging in with OAuth SASL mechanisms and
// reading a mailbox.
//
// We write it by hand because no POP3 module can be fetched through the
// module proxy this project builds with (every candidate answers 403), and
// the protocol is small. Commands are written with net/textproto; replies
// are read through a bufio.Reader of our own so every line has a length cap
// (textproto.Reader reads lines of any length, which a hostile server could
// use to exhaust memory).
//
//	c, err := pop3.NewClient(conn)
//	err = c.Auth(sasl.NewXOAUTH2Client(sasl.Options{User: u, Token: tok}))
//	n, size, err := c.Stat()
package pop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// Limits on what a server may send. RFC 1939 caps replies at 512 octets and
// RFC 5322 message lines at 998, but real servers exceed both (long base64
// SASL challenges, badly folded headers), so the caps are generous and only
// guard memory.
const (
	// MaxLineLength caps one reply or message line, CRLF included.
	MaxLineLength = 64 << 10
	// DefaultMaxMessageSize caps what Retr will read.
	DefaultMaxMessageSize = 64 << 20
)

// ErrLineTooLong is returned when a server line is longer than MaxLineLength.
var ErrLineTooLong = errors.New("pop3: server line too long")

// Error is a -ERR reply. Text is the server's text as sent (after "-ERR "),
// e.g. Dovecot's "[AUTH] Authentication failed." or Exchange's
// "Authentication failure: unknown user name or bad password.".
type Error struct {
	// Command is the command's name (USER, AUTH, RETR…), never its
	// arguments, which may be secret.
	Command string
	Text    string
}

// Error returns the command and the server's reply line.
func (e *Error) Error() string {
	return "pop3 " + strings.ToLower(e.Command) + ": -ERR " + e.Text
}

// Reply returns the reply line as the server sent it.
func (e *Error) Reply() string { return strings.TrimSpace("-ERR " + e.Text) }

// Client is a POP3 client on one connection. It is not safe for concurrent
// use; POP3 is strictly one command at a time.
type Client struct {
	conn     net.Conn
	r        *bufio.Reader
	w        *textproto.Writer
	greeting string
	tls      bool

	// MaxMessageSize caps Retr (DefaultMaxMessageSize when 0).
	MaxMessageSize int64
}

// NewClient reads the server greeting on conn and returns the client. The
// connection is already TLS for implicit TLS (pop3s); use StartTLS for STLS.
func NewClient(conn net.Conn) (*Client, error) {
	c := &Client{}
	c.setConn(conn)
	_, isTLS := conn.(*tls.Conn)
	c.tls = isTLS
	line, err := c.readStatus("greeting")
	if err != nil {
		return nil, err
	}
	c.greeting = line
	return c, nil
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, 4096)
	c.w = textproto.NewWriter(bufio.NewWriter(conn))
}

// Greeting returns the text of the server's +OK greeting.
func (c *Client) Greeting() string { return c.greeting }

// Conn returns the underlying connection (a *tls.Conn after StartTLS).
func (c *Client) Conn() net.Conn { return c.conn }

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

// readLine reads one line without its CRLF (or bare LF), refusing lines
// longer than MaxLineLength.
func (c *Client) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		if len(line)+len(frag) > MaxLineLength {
			return nil, ErrLineTooLong
		}
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("pop3: read: %w", err)
		}
		break
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// readStatus reads a status line: "+OK text" returns text, "-ERR text"
// returns *Error.
func (c *Client) readStatus(cmd string) (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	return parseStatus(cmd, string(line))
}

// parseStatus splits a status line.
func parseStatus(cmd, line string) (string, error) {
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		return strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " "), nil
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		return "", &Error{Command: cmd, Text: strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " ")}
	}
	return "", fmt.Errorf("pop3 %s: malformed reply %q", strings.ToLower(cmd), capQuote(line))
}

func capQuote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// readMulti reads the lines of a multi-line response up to the "."
// terminator, undoing dot-stuffing (RFC 1939 §3). maxBytes caps the total.
func (c *Client) readMulti(maxBytes int64) ([][]byte, error) {
	var lines [][]byte
	var total int64
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) == 1 && line[0] == '.' {
			return lines, nil
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		total += int64(len(line)) + 2
		if total > maxBytes {
			return nil, fmt.Errorf("pop3: multi-line response larger than %d bytes", maxBytes)
		}
		lines = append(lines, line)
	}
}

// cmd sends a command line and reads the status reply. name is the
// command's name for errors; the line itself is never put in an error.
func (c *Client) cmd(name, format string, args ...any) (string, error) {
	if err := c.w.PrintfLine(format, args...); err != nil {
		return "", fmt.Errorf("pop3 %s: write: %w", strings.ToLower(name), err)
	}
	return c.readStatus(name)
}

// Capabilities returns the CAPA list (RFC 2449) as capability name (upper
// case) → arguments, e.g. "SASL" → ["OAUTHBEARER", "XOAUTH2"].
func (c *Client) Capabilities() (map[string][]string, error) {
	if _, err := c.cmd("CAPA", "CAPA"); err != nil {
		return nil, err
	}
	lines, err := c.readMulti(1 << 20)
	if err != nil {
		return nil, err
	}
	return parseCapa(lines), nil
}

func parseCapa(lines [][]byte) map[string][]string {
	caps := make(map[string][]string, len(lines))
	for _, l := range lines {
		f := strings.Fields(string(l))
		if len(f) == 0 {
			continue
		}
		caps[strings.ToUpper(f[0])] = f[1:]
	}
	return caps
}

// StartTLS sends STLS and upgrades the connection. config must verify the
// server (its ServerName set when dialling by name).
func (c *Client) StartTLS(config *tls.Config) error {
	if c.tls {
		return errors.New("pop3 stls: connection already uses TLS")
	}
	if _, err := c.cmd("STLS", "STLS"); err != nil {
		return err
	}
	if c.r.Buffered() > 0 {
		// Anything the server sent after +OK would be read as if it had
		// come over TLS (the STARTTLS command injection class of bugs).
		return errors.New("pop3 stls: server sent data before the TLS handshake")
	}
	tc := tls.Client(c.conn, config)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("pop3 stls: tls handshake: %w", err)
	}
	c.setConn(tc)
	c.tls = true
	return nil
}

// AuthOptions changes how Auth talks to the server.
type AuthOptions struct {
	// InitialResponse sends the initial response on the AUTH line (RFC 5034
	// §4). Off by default: Exchange Online requires the two-step form
	// ("AUTH XOAUTH2", "+", then the data), and a bearer token makes the
	// AUTH line longer than the 255 octets RFC 5034 allows.
	InitialResponse bool
}

// Auth runs a SASL exchange with AUTH (RFC 5034) in the two-step form.
func (c *Client) Auth(a gosasl.Client) error {
	return c.AuthWith(a, AuthOptions{})
}

// AuthWith runs a SASL exchange with AUTH. A -ERR reply is a *Error; when
// the mechanism fails the exchange itself, it is cancelled with "*".
func (c *Client) AuthWith(a gosasl.Client, opts AuthOptions) error {
	mech, ir, err := a.Start()
	if err != nil {
		return fmt.Errorf("pop3 auth: %w", err)
	}
	line := "AUTH " + mech
	if opts.InitialResponse && ir != nil {
		line += " " + encodeSASL(ir)
		ir = nil
	}
	if err := c.w.PrintfLine("%s", line); err != nil {
		return fmt.Errorf("pop3 auth: write: %w", err)
	}
	for {
		raw, err := c.readLine()
		if err != nil {
			return err
		}
		l := string(raw)
		if l != "+" && !strings.HasPrefix(l, "+ ") {
			_, err := parseStatus("AUTH", l)
			return err
		}
		chal := strings.TrimSpace(strings.TrimPrefix(l, "+"))
		var resp []byte
		if chal == "" && ir != nil {
			// The server wants the initial response we held back.
			resp, ir = ir, nil
		} else {
			challenge, err := base64.StdEncoding.DecodeString(chal)
			if err != nil {
				return c.cancelAuth(fmt.Errorf("pop3 auth: malformed challenge: %w", err))
			}
			resp, err = a.Next(challenge)
			if err != nil {
				return c.cancelAuth(fmt.Errorf("pop3 auth: %w", err))
			}
		}
		if err := c.w.PrintfLine("%s", base64.StdEncoding.EncodeToString(resp)); err != nil {
			return fmt.Errorf("pop3 auth: write: %w", err)
		}
	}
}

// cancelAuth sends "*" (RFC 5034 §4) and reads the server's -ERR, returning
// cause.
func (c *Client) cancelAuth(cause error) error {
	if err := c.w.PrintfLine("*"); err == nil {
		c.readLine()
	}
	return cause
}

// encodeSASL encodes an initial response; "=" stands for an empty one.
func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// User and Pass log in with USER/PASS (RFC 1939 §7), for completeness: the
// servers this project targets want OAuth.
func (c *Client) User(name string) error {
	_, err := c.cmd("USER", "USER %s", name)
	return err
}

// Pass sends PASS after User.
func (c *Client) Pass(password string) error {
	_, err := c.cmd("PASS", "PASS %s", password)
	return err
}

// Stat returns the number of messages and their total size in octets.
func (c *Client) Stat() (count int, size int64, err error) {
	text, err := c.cmd("STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(text)
}

func parseStat(text string) (int, int64, error) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("pop3 stat: malformed reply %q", capQuote(text))
	}
	n, err1 := strconv.Atoi(f[0])
	s, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || n < 0 || s < 0 {
		return 0, 0, fmt.Errorf("pop3 stat: malformed reply %q", capQuote(text))
	}
	return n, s, nil
}

// MessageInfo is one line of LIST or UIDL.
type MessageInfo struct {
	ID   int
	Size int64  // from LIST
	UID  string // from UIDL
}

// List returns the size of every message (LIST).
func (c *Client) List() ([]MessageInfo, error) {
	if _, err := c.cmd("LIST", "LIST"); err != nil {
		return nil, err
	}
	lines, err := c.readMulti(16 << 20)
	if err != nil {
		return nil, err
	}
	out := make([]MessageInfo, 0, len(lines))
	for _, l := range lines {
		id, arg, err := parseScanLine("list", string(l))
		if err != nil {
			return nil, err
		}
		size, err := strconv.ParseInt(arg, 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("pop3 list: malformed line %q", capQuote(string(l)))
		}
		out = append(out, MessageInfo{ID: id, Size: size})
	}
	return out, nil
}

// UIDL returns the unique id of every message.
func (c *Client) UIDL() ([]MessageInfo, error) {
	if _, err := c.cmd("UIDL", "UIDL"); err != nil {
		return nil, err
	}
	lines, err := c.readMulti(16 << 20)
	if err != nil {
		return nil, err
	}
	out := make([]MessageInfo, 0, len(lines))
	for _, l := range lines {
		id, uid, err := parseScanLine("uidl", string(l))
		if err != nil {
			return nil, err
		}
		out = append(out, MessageInfo{ID: id, UID: uid})
	}
	return out, nil
}

// parseScanLine splits "N ARG" (a LIST or UIDL line).
func parseScanLine(cmd, l string) (int, string, error) {
	f := strings.Fields(l)
	if len(f) < 2 {
		return 0, "", fmt.Errorf("pop3 %s: malformed line %q", cmd, capQuote(l))
	}
	id, err := strconv.Atoi(f[0])
	if err != nil || id <= 0 {
		return 0, "", fmt.Errorf("pop3 %s: malformed line %q", cmd, capQuote(l))
	}
	return id, f[1], nil
}

// Retr returns message id with dot-stuffing undone and CRLF line ends.
func (c *Client) Retr(id int) ([]byte, error) {
	if _, err := c.cmd("RETR", "RETR %d", id); err != nil {
		return nil, err
	}
	max := c.MaxMessageSize
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	lines, err := c.readMulti(max)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// Dele marks message id for deletion at QUIT.
func (c *Client) Dele(id int) error {
	_, err := c.cmd("DELE", "DELE %d", id)
	return err
}

// Noop sends NOOP.
func (c *Client) Noop() error {
	_, err := c.cmd("NOOP", "NOOP")
	return err
}

// Quit sends QUIT (which commits deletions) and closes the connection.
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	cerr := c.conn.Close()
	if err != nil {
		return err
	}
	return cerr
}
