package exchange

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The POP3 server is written by hand: no Go POP3 server module is
// available, and the protocol (RFC 1939 + RFC 5034 AUTH) is small.

// Exchange's POP3 texts (reference §5.2; PASS failure text [obs]).
const (
	popAuthOK      = "+OK User successfully authenticated."
	popAuthFailed  = "-ERR Authentication failure: unknown user name or bad password."
	popLogonFailed = "-ERR Logon failure: unknown user name or bad password."
	popBadState    = "-ERR Command is not valid in this state."
	popUnknown     = "-ERR Protocol error. 14"
	popTooLong     = "-ERR Protocol error. Line too long."
	popNoSuchMsg   = "-ERR The specified message is out of range."
	popSignOff     = "+OK Microsoft Exchange Server POP3 server signing off."
	// maxPOPLine caps one command line (a SASL response carries a whole
	// token, so this is generous) so a client cannot make us buffer
	// without bound.
	maxPOPLine = 16 << 10
)

// POPCommand is one parsed POP3 command line.
type POPCommand struct {
	Name string   // upper-cased keyword
	Args []string // space-separated arguments
}

// ParsePOPCommand parses one command line (without CRLF): a keyword of
// 3–4 printable characters, then arguments separated by single spaces
// (RFC 1939 §3; RFC 5034 for AUTH's initial response).
func ParsePOPCommand(line string) (POPCommand, error) {
	if len(line) > maxPOPLine {
		return POPCommand{}, errors.New("line too long")
	}
	if line == "" {
		return POPCommand{}, errors.New("empty command")
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return POPCommand{}, errors.New("control character in command")
		}
	}
	fields := strings.Split(line, " ")
	name := fields[0]
	if len(name) < 3 || len(name) > 4 {
		return POPCommand{}, fmt.Errorf("bad keyword length %d", len(name))
	}
	for _, c := range []byte(name) {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return POPCommand{}, errors.New("keyword is not alphabetic")
		}
	}
	cmd := POPCommand{Name: strings.ToUpper(name)}
	for _, a := range fields[1:] {
		if a == "" {
			continue // tolerate doubled spaces
		}
		cmd.Args = append(cmd.Args, a)
	}
	return cmd, nil
}

// popConn is one POP3 session.
type popConn struct {
	s       *Server
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	remote  string
	mailbox string
	msgs    []*Message
	deleted map[int]bool
	user    string
}

func (s *Server) servePOP3(c net.Conn) {
	defer c.Close()
	pc := &popConn{s: s, c: c, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriter(c), remote: c.RemoteAddr().String()}
	pc.reply("+OK The Microsoft Exchange POP3 service is ready. [" + s.serverID() + "]")
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		line, err := pc.readLine()
		if errors.Is(err, errLineTooLong) {
			pc.reply(popTooLong)
			return
		}
		if err != nil {
			return
		}
		if quit := pc.handle(line); quit {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one CRLF (or LF) terminated line of at most maxPOPLine.
func (pc *popConn) readLine() (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := pc.r.ReadLine()
		if err != nil {
			return "", err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxPOPLine {
			return "", errLineTooLong
		}
		if !isPrefix {
			return string(buf), nil
		}
	}
}

func (pc *popConn) reply(lines ...string) {
	for _, l := range lines {
		pc.w.WriteString(l)
		pc.w.WriteString("\r\n")
	}
	pc.w.Flush()
}

func (pc *popConn) authenticated() bool { return pc.mailbox != "" }

// handle runs one command; it reports whether the session ends.
func (pc *popConn) handle(line string) bool {
	cmd, err := ParsePOPCommand(line)
	if err != nil {
		pc.reply(popUnknown)
		return false
	}
	switch cmd.Name {
	case "CAPA":
		caps := []string{"+OK", "TOP", "UIDL", "SASL " + strings.Join(pc.mechs(), " "), "USER", "."}
		pc.reply(caps...)
		return false
	case "QUIT":
		if pc.authenticated() {
			var del []*Message
			for i := range pc.deleted {
				del = append(del, pc.msgs[i])
			}
			pc.s.store.remove(pc.mailbox, del)
		}
		pc.reply(popSignOff)
		return true
	case "NOOP":
		if !pc.authenticated() {
			pc.reply(popBadState)
			return false
		}
		pc.reply("+OK")
		return false
	}
	if !pc.authenticated() {
		switch cmd.Name {
		case "USER":
			if len(cmd.Args) != 1 {
				pc.reply(popUnknown)
				return false
			}
			pc.user = cmd.Args[0]
			pc.reply("+OK")
		case "PASS":
			pc.s.log.Warn("exchange login refused", "protocol", "pop3", "mechanism", "USER/PASS", "user", pc.user,
				"remote", pc.remote, "reason", "basic authentication is disabled")
			pc.reply(popLogonFailed)
		case "AUTH":
			pc.auth(cmd)
		default:
			pc.reply(popBadState)
		}
		return false
	}
	pc.transaction(cmd)
	return false
}

func (pc *popConn) mechs() []string {
	if pc.s.OAuthBearer() {
		return []string{"XOAUTH2", "OAUTHBEARER"}
	}
	return []string{"XOAUTH2"}
}

// auth runs AUTH mech [initial-response] (RFC 5034).
func (pc *popConn) auth(cmd POPCommand) {
	if len(cmd.Args) == 0 || len(cmd.Args) > 2 {
		pc.reply(popUnknown)
		return
	}
	mech := strings.ToUpper(cmd.Args[0])
	ok := mech == "XOAUTH2" || (mech == "OAUTHBEARER" && pc.s.OAuthBearer())
	if !ok {
		pc.s.log.Warn("exchange login refused", "protocol", "pop3", "mechanism", mech, "remote", pc.remote,
			"reason", "mechanism not offered")
		pc.reply(popAuthFailed)
		return
	}
	var granted string
	m := &saslServer{s: pc.s, proto: POP3, mech: mech, failure: errors.New(popAuthFailed), remote: pc.remote,
		onSuccess: func(g Grant) error { granted = g.Mailbox; return nil }}
	var resp []byte
	if len(cmd.Args) == 2 {
		var err error
		if resp, err = decodeSASLLine(cmd.Args[1]); err != nil {
			pc.s.log.Warn("exchange login refused", "protocol", "pop3", "mechanism", mech, "remote", pc.remote,
				"reason", "initial response is not base64")
			pc.reply(popAuthFailed)
			return
		}
	}
	for {
		chal, done, err := m.Next(resp)
		if err != nil {
			pc.reply(popAuthFailed)
			return
		}
		if done {
			break
		}
		pc.reply("+ " + base64.StdEncoding.EncodeToString(chal))
		line, err := pc.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				pc.reply(popTooLong)
			}
			_ = pc.c.Close() // the rest of an over-long line must not run as a command
			return
		}
		if line == "*" {
			pc.reply(popAuthFailed)
			return
		}
		if resp, err = decodeSASLLine(line); err != nil {
			pc.s.log.Warn("exchange login refused", "protocol", "pop3", "mechanism", mech, "remote", pc.remote,
				"reason", "response is not base64")
			pc.reply(popAuthFailed)
			return
		}
	}
	pc.mailbox = granted
	pc.msgs = pc.s.store.inbox(pc.mailbox)
	pc.deleted = map[int]bool{}
	pc.reply(popAuthOK)
}

// decodeSASLLine decodes a base64 SASL response line ("=" is empty).
func decodeSASLLine(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode sasl response: %w", err)
	}
	return b, nil
}

// msgArg parses a message-number argument of the maildrop.
func (pc *popConn) msgArg(a string) (int, bool) {
	n, err := strconv.Atoi(a)
	if err != nil || n < 1 || n > len(pc.msgs) || pc.deleted[n-1] {
		return 0, false
	}
	return n - 1, true
}

func (pc *popConn) transaction(cmd POPCommand) {
	switch cmd.Name {
	case "STAT":
		n, size := 0, 0
		for i, m := range pc.msgs {
			if !pc.deleted[i] {
				n++
				size += len(m.Raw)
			}
		}
		pc.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST", "UIDL":
		val := func(i int) string {
			if cmd.Name == "LIST" {
				return strconv.Itoa(len(pc.msgs[i].Raw))
			}
			return pc.uidl(pc.msgs[i])
		}
		if len(cmd.Args) == 1 {
			i, ok := pc.msgArg(cmd.Args[0])
			if !ok {
				pc.reply(popNoSuchMsg)
				return
			}
			pc.reply(fmt.Sprintf("+OK %d %s", i+1, val(i)))
			return
		}
		lines := []string{"+OK"}
		for i := range pc.msgs {
			if !pc.deleted[i] {
				lines = append(lines, fmt.Sprintf("%d %s", i+1, val(i)))
			}
		}
		pc.reply(append(lines, ".")...)
	case "RETR", "TOP":
		if len(cmd.Args) < 1 {
			pc.reply(popUnknown)
			return
		}
		i, ok := pc.msgArg(cmd.Args[0])
		if !ok {
			pc.reply(popNoSuchMsg)
			return
		}
		raw := pc.msgs[i].Raw
		if cmd.Name == "TOP" {
			if len(cmd.Args) != 2 {
				pc.reply(popUnknown)
				return
			}
			n, err := strconv.Atoi(cmd.Args[1])
			if err != nil || n < 0 {
				pc.reply(popUnknown)
				return
			}
			raw = topLines(raw, n)
		}
		pc.w.WriteString("+OK\r\n")
		pc.w.Write(dotStuff(raw))
		pc.reply(".")
	case "DELE":
		if len(cmd.Args) != 1 {
			pc.reply(popUnknown)
			return
		}
		i, ok := pc.msgArg(cmd.Args[0])
		if !ok {
			pc.reply(popNoSuchMsg)
			return
		}
		pc.deleted[i] = true
		pc.reply("+OK")
	case "RSET":
		pc.deleted = map[int]bool{}
		pc.reply("+OK")
	case "USER", "PASS", "AUTH":
		pc.reply(popBadState)
	default:
		pc.reply(popUnknown)
	}
}

// uidl is the stable unique id of a message (RFC 1939: printable, ≤ 70).
func (pc *popConn) uidl(m *Message) string {
	id := m.ID
	if len(id) > 70 {
		id = id[len(id)-70:]
	}
	return id
}

// topLines returns the header and the first n body lines of raw.
func topLines(raw []byte, n int) []byte {
	i := bytes.Index(raw, []byte("\r\n\r\n"))
	sep := 4
	if i < 0 {
		if i = bytes.Index(raw, []byte("\n\n")); i < 0 {
			return raw
		}
		sep = 2
	}
	out := append([]byte(nil), raw[:i+sep]...)
	body := raw[i+sep:]
	for k := 0; k < n && len(body) > 0; k++ {
		j := bytes.IndexByte(body, '\n')
		if j < 0 {
			out = append(out, body...)
			break
		}
		out = append(out, body[:j+1]...)
		body = body[j+1:]
	}
	return out
}

// dotStuff normalises line ends to CRLF, doubles leading dots, and ends
// with CRLF (RFC 1939 §3 multi-line responses).
func dotStuff(raw []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.SplitAfter(raw, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		l = bytes.TrimRight(l, "\r\n")
		if bytes.HasPrefix(l, []byte(".")) {
			b.WriteByte('.')
		}
		b.Write(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}
