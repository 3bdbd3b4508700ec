package proxy

import (
	"context"
	"errors"
	"strings"
)

// imap runs the IMAP side before login (RFC 9051/3501 not-authenticated
// state): CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN and AUTHENTICATE
// PLAIN; everything else is refused until the client logs in.
func (ss *session) imap() {
	ir := &imapReader{
		r: ss.r, maxLine: ss.s.cfg.MaxLine, maxLiteral: ss.s.cfg.MaxLiteral,
		cont:     func() error { return ss.write("+ Ready for literal data\r\n") },
		readLine: ss.readLine,
	}
	if ss.write("* OK [CAPABILITY "+ss.imapCaps()+"] "+ss.s.cfg.Hostname+" mailoauth proxy ready\r\n") != nil {
		return
	}
	for {
		ir.r = ss.r // a new reader after STARTTLS
		cmd, err := ir.read()
		switch {
		case errors.Is(err, errLineTooLong):
			ss.write("* BYE Line too long\r\n")
			return
		case errors.Is(err, errLiteralTooLong):
			ss.write("* BYE Literal too large\r\n")
			return
		case errors.Is(err, errBadSyntax):
			tag := "*"
			if cmd != nil && cmd.tag != "" {
				tag = cmd.tag
			}
			if !ss.imapBad(tag, "Syntax error") {
				return
			}
			continue
		case err != nil:
			ss.s.log.Debug("client gone before login", "remote", ss.remote, "err", err)
			return
		}
		switch cmd.name {
		case "CAPABILITY":
			if ss.write("* CAPABILITY "+ss.imapCaps()+"\r\n", cmd.tag+" OK CAPABILITY completed\r\n") != nil {
				return
			}
		case "NOOP":
			if ss.write(cmd.tag+" OK NOOP completed\r\n") != nil {
				return
			}
		case "ID":
			if ss.write("* ID (\"name\" \"mailoauth\")\r\n", cmd.tag+" OK ID completed\r\n") != nil {
				return
			}
		case "LOGOUT":
			ss.write("* BYE Logging out\r\n", cmd.tag+" OK LOGOUT completed\r\n")
			return
		case "STARTTLS":
			if ss.s.cfg.TLS != TLSStartTLS || ss.tls {
				if !ss.imapBad(cmd.tag, "STARTTLS not available") {
					return
				}
				continue
			}
			if len(cmd.args) != 0 {
				if !ss.imapBad(cmd.tag, "STARTTLS takes no arguments") {
					return
				}
				continue
			}
			if ss.write(cmd.tag+" OK Begin TLS negotiation now\r\n") != nil || !ss.startTLS() {
				return
			}
		case "LOGIN":
			if len(cmd.args) != 2 {
				if !ss.imapBad(cmd.tag, "LOGIN needs a user name and a password") {
					return
				}
				continue
			}
			if done := ss.imapLogin(cmd.tag, cmd.args[0], cmd.args[1]); done {
				return
			}
		case "AUTHENTICATE":
			if len(cmd.args) < 1 || len(cmd.args) > 2 {
				if !ss.imapBad(cmd.tag, "AUTHENTICATE needs a mechanism") {
					return
				}
				continue
			}
			if !strings.EqualFold(cmd.args[0], "PLAIN") {
				if ss.write(cmd.tag+" NO Unsupported authentication mechanism\r\n") != nil {
					return
				}
				continue
			}
			if len(cmd.args) == 1 && ss.needsTLS() {
				// Refuse before the "+" that would ask for the password in
				// clear text.
				if ss.write(cmd.tag+" NO [PRIVACYREQUIRED] Run STARTTLS first\r\n") != nil {
					return
				}
				continue
			}
			var resp string
			if len(cmd.args) == 2 {
				resp = cmd.args[1]
				if resp == "=" { // RFC 4959: an empty initial response
					resp = ""
				}
			} else {
				var ok bool
				resp, ok, err = ss.saslResponse("+ \r\n", "* BYE Line too long\r\n", cmd.tag+" BAD Authentication cancelled\r\n")
				if err != nil {
					return
				}
				if !ok {
					continue
				}
			}
			user, pass, err := decodePlain(resp)
			if err != nil {
				if !ss.imapBad(cmd.tag, "Invalid SASL PLAIN response") {
					return
				}
				continue
			}
			if done := ss.imapLogin(cmd.tag, user, pass); done {
				return
			}
		case "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB",
			"STATUS", "APPEND", "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID",
			"IDLE", "ENABLE", "NAMESPACE", "UNSELECT", "GETQUOTA", "GETQUOTAROOT", "GETACL", "MYRIGHTS":
			if !ss.imapBad(cmd.tag, "Log in first") {
				return
			}
		default:
			if !ss.imapBad(cmd.tag, "Unknown command") {
				return
			}
		}
	}
}

// imapBad answers BAD and counts the error; false means the client has
// sent too many and was disconnected.
func (ss *session) imapBad(tag, text string) bool {
	ss.errors++
	if ss.errors >= maxErrors {
		ss.write(tag+" BAD "+text+"\r\n", "* BYE Too many invalid commands\r\n")
		return false
	}
	return ss.write(tag+" BAD "+text+"\r\n") == nil
}

// imapLogin logs in locally and upstream; true means the session is over
// (relayed to its end, or the client gone).
func (ss *session) imapLogin(tag, user, pass string) bool {
	if ss.needsTLS() {
		return ss.write(tag+" NO [PRIVACYREQUIRED] Run STARTTLS first\r\n") != nil
	}
	acct, err := ss.checkPassword(user, pass)
	if err != nil {
		if errors.Is(err, loginBadPassword) {
			return ss.write(tag+" NO [AUTHENTICATIONFAILED] Authentication failed\r\n") != nil
		}
		return true
	}
	final, u, err := ss.upstreamLogin(acct, (*upConn).imapLogin)
	switch {
	case errors.Is(err, loginTooMany):
		return ss.write(tag+" NO [LIMIT] Too many connections for this account\r\n") != nil
	case err != nil:
		return ss.write(tag+" NO [UNAVAILABLE] "+upstreamFailure(err)+"\r\n") != nil
	}
	if ss.write(tag+" OK "+final+"\r\n") != nil {
		ss.s.releaseAccount(acct.Name)
		return true
	}
	ss.next = &relayTo{acct, u}
	return true
}

// imapCaps is the capability list before login: the upstream's, without
// what only the proxy may answer (AUTH=, LOGINDISABLED, STARTTLS, LITERAL
// variants), plus what the proxy offers locally.
func (ss *session) imapCaps() string {
	caps := []string{"IMAP4rev1"}
	for _, c := range ss.s.upstreamCaps() {
		u := strings.ToUpper(c)
		if strings.HasPrefix(u, "AUTH=") || u == "LOGINDISABLED" || u == "STARTTLS" || u == "LITERAL+" || u == "LITERAL-" || u == "SASL-IR" || u == "ID" {
			continue
		}
		caps = append(caps, c)
	}
	caps = append(caps, "SASL-IR", "LITERAL+", "ID")
	if ss.s.cfg.TLS == TLSStartTLS && !ss.tls {
		caps = append(caps, "STARTTLS", "LOGINDISABLED")
	} else {
		caps = append(caps, "AUTH=PLAIN")
	}
	return strings.Join(dedupFold(caps), " ")
}

func dedupFold(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		k := strings.ToUpper(s)
		if !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

// imapPrelude reads the greeting, upgrades with STARTTLS when the URL
// says so, and asks for the capabilities.
func (u *upConn) imapPrelude(ctx context.Context) error {
	g, err := u.line()
	if err != nil {
		return err
	}
	if !hasPrefixFold(g, "* OK") {
		return errors.New("unexpected greeting " + quoteIMAP(capText(g, 200)))
	}
	if u.acct.Upstream.Security == securityStartTLS {
		if _, err := u.imapSimple("P0", "STARTTLS"); err != nil {
			return err
		}
		if err := u.startTLS(ctx); err != nil {
			return err
		}
	}
	lines, err := u.imapSimple("P1", "CAPABILITY")
	if err != nil {
		return err
	}
	u.preCaps = nil
	for _, l := range lines {
		if hasPrefixFold(l, "* CAPABILITY ") {
			u.preCaps = append(u.preCaps, strings.Fields(l[len("* CAPABILITY "):])...)
		}
	}
	return nil
}

// imapSimple runs one command and returns its untagged lines; anything but
// OK is an error.
func (u *upConn) imapSimple(tag, cmd string) ([]string, error) {
	if err := u.send(tag + " " + cmd); err != nil {
		return nil, err
	}
	var untagged []string
	for {
		l, err := u.line()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(l, tag+" ") {
			if hasPrefixFold(l[len(tag)+1:], "OK") {
				return untagged, nil
			}
			return nil, errors.New(cmd + ": server said " + quoteIMAP(capText(l, 200)))
		}
		untagged = append(untagged, l)
	}
}

// imapLogin authenticates with the token and returns the text of the
// server's tagged OK (with its [CAPABILITY …] code) for the client.
func (u *upConn) imapLogin(ctx context.Context, token string) (string, error) {
	if err := u.imapPrelude(ctx); err != nil {
		return "", err
	}
	var offered []string
	saslIR := false
	for _, c := range u.preCaps {
		if hasPrefixFold(c, "AUTH=") {
			offered = append(offered, c[5:])
		}
		saslIR = saslIR || strings.EqualFold(c, "SASL-IR")
	}
	c, ir, err := u.saslClient(offered, token)
	if err != nil {
		return "", err
	}
	const tag = "P2"
	sentIR := saslIR
	if saslIR {
		err = u.send(tag + " AUTHENTICATE " + u.mech + " " + ir)
	} else {
		err = u.send(tag + " AUTHENTICATE " + u.mech)
	}
	if err != nil {
		return "", err
	}
	for rounds := 0; rounds < 4; {
		l, err := u.line()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(l, "+"):
			rounds++
			ans := ir
			if sentIR {
				ans, _ = answerChallenge(c, strings.TrimPrefix(l, "+"))
			}
			sentIR = true
			if err := u.send(ans); err != nil {
				return "", err
			}
		case strings.HasPrefix(l, tag+" "):
			rest := l[len(tag)+1:]
			if hasPrefixFold(rest, "OK") {
				if text := strings.TrimLeft(rest[2:], " "); text != "" {
					return text, nil
				}
				return "Logged in", nil
			}
			return "", failure(c, l, imapTokenRefused(rest))
		}
	}
	return "", errors.New("server kept sending challenges")
}

// imapTokenRefused says whether a tagged answer to AUTHENTICATE refuses the
// token: Dovecot says NO [AUTHENTICATIONFAILED], Exchange Online a bare
// "NO AUTHENTICATE failed.". A NO with a code for a passing condition
// (server unavailable, too many sessions) is not the token's fault.
func imapTokenRefused(rest string) bool {
	up := strings.ToUpper(rest)
	if strings.Contains(up, "[AUTHENTICATIONFAILED]") {
		return true
	}
	if !hasPrefixFold(rest, "NO") {
		return false
	}
	for _, code := range []string{"[UNAVAILABLE]", "[LIMIT]", "[INUSE]", "[SERVERBUG]", "[CONTACTADMIN]"} {
		if strings.Contains(up, code) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, p string) bool {
	return len(s) >= len(p) && strings.EqualFold(s[:len(p)], p)
}
