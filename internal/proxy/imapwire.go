package proxy

import (
	"bufio"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// imapCmd is one IMAP command as a client sends it before login.
type imapCmd struct {
	tag  string
	name string // upper case
	args []string
}

// Pre-login IMAP input errors. errBadSyntax is answered with BAD and the
// session goes on; the other two end it, because the rest of the input can
// no longer be framed (an over-long line or literal has no end we trust).
var (
	errBadSyntax      = errors.New("syntax error")
	errLiteralTooLong = errors.New("literal too large")
)

// imapReader frames IMAP commands before login: one line, plus the
// literals ({n} synchronizing, {n+} LITERAL+, RFC 7888) it announces, each
// followed by the rest of the command on a new line. Written by hand
// because go-imap v2's wire parser is internal/imapwire and cannot be
// imported, and a pre-login parser needs only atoms, quoted strings,
// literals and parentheses (for ID).
type imapReader struct {
	r          *bufio.Reader
	maxLine    int
	maxLiteral int
	// cont is called before a synchronizing literal is read, to send the
	// "+" continuation request.
	cont func() error
	// readLine reads the next line (the session sets read deadlines).
	readLine func() (string, error)
}

// maxArgs caps the arguments of one pre-login command: ID, the longest,
// has at most 30 field-value pairs (RFC 2971) in parentheses.
const maxArgs = 100

// read returns the next command. A command's lines together (the first
// and those that follow its literals) are capped at maxLine octets and its
// arguments at maxArgs, so a client cannot grow one command without bound
// by chaining empty literals ({0+}) across lines; both end the session
// with errLineTooLong.
func (ir *imapReader) read() (*imapCmd, error) {
	line, err := ir.readLine()
	if err != nil {
		return nil, err
	}
	used := len(line)
	cmd := &imapCmd{}
	tag, rest, _ := strings.Cut(line, " ")
	if !validTag(tag) {
		return cmd, errBadSyntax
	}
	cmd.tag = tag
	name, rest, _ := strings.Cut(rest, " ")
	if name == "" || !isAtom(name) {
		return cmd, errBadSyntax
	}
	cmd.name = strings.ToUpper(name)
	literals := 0
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return cmd, nil
		}
		if len(cmd.args) >= maxArgs {
			return cmd, errLineTooLong
		}
		switch c := rest[0]; {
		case c == '(' || c == ')':
			cmd.args = append(cmd.args, rest[:1])
			rest = rest[1:]
		case c == '"':
			s, n, ok := unquote(rest)
			if !ok {
				return cmd, errBadSyntax
			}
			cmd.args = append(cmd.args, s)
			rest = rest[n:]
		case c == '{':
			n, sync, ok := literalHeader(rest)
			if !ok {
				return cmd, errBadSyntax
			}
			literals += n
			if literals > ir.maxLiteral {
				return cmd, errLiteralTooLong
			}
			if sync {
				if err := ir.cont(); err != nil {
					return cmd, err
				}
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(ir.r, buf); err != nil {
				return cmd, err
			}
			cmd.args = append(cmd.args, string(buf))
			if rest, err = ir.readLine(); err != nil {
				return cmd, err
			}
			if used += len(rest); used > ir.maxLine {
				return cmd, errLineTooLong
			}
			if rest != "" && rest[0] != ' ' {
				return cmd, errBadSyntax
			}
		default:
			end := strings.IndexAny(rest, " ()")
			if end < 0 {
				end = len(rest)
			}
			a := rest[:end]
			if !isAstring(a) {
				return cmd, errBadSyntax
			}
			cmd.args = append(cmd.args, a)
			rest = rest[end:]
		}
	}
}

// literalHeader parses "{n}" or "{n+}" which must end the line.
func literalHeader(s string) (n int, sync, ok bool) {
	if len(s) < 3 || s[0] != '{' || s[len(s)-1] != '}' {
		return 0, false, false
	}
	num := s[1 : len(s)-1]
	sync = true
	if strings.HasSuffix(num, "+") {
		num, sync = num[:len(num)-1], false
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, false, false
	}
	v, err := strconv.ParseInt(num, 10, 32)
	if err != nil { // out of range: too large for any cap
		v = math.MaxInt32
	}
	return int(v), sync, true
}

// unquote reads an IMAP quoted string at the start of s (RFC 9051
// "quoted": only \\ and \" may be escaped) and returns it and the octets
// it took.
func unquote(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			i++
			if i >= len(s) || (s[i] != '\\' && s[i] != '"') {
				return "", 0, false
			}
			b.WriteByte(s[i])
		case '\r', '\n', 0:
			return "", 0, false
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// isAtomChar is RFC 9051 ATOM-CHAR: CHAR minus atom-specials.
func isAtomChar(c byte) bool {
	if c <= 0x1f || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// isAstring allows resp-specials (]) besides atom chars, as ASTRING-CHAR.
func isAstring(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) && s[i] != ']' {
			return false
		}
	}
	return s != ""
}

// validTag is RFC 9051 tag: ASTRING-CHARs except "+", at most 64 here.
func validTag(t string) bool {
	return len(t) <= 64 && isAstring(t) && !strings.Contains(t, "+")
}

// quoteIMAP writes s as an IMAP quoted string.
func quoteIMAP(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
