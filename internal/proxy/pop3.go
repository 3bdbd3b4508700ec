package proxy

import (
	"context"
	"errors"
	"strings"
)

// pop3 runs the POP3 AUTHORIZATION state (RFC 1939, 2449, 5034, 2595):
// CAPA, USER/PASS, AUTH PLAIN, STLS, QUIT; other commands wait for login.
func (ss *session) pop3() {
	if ss.write("+OK "+ss.s.cfg.Hostname+" mailoauth proxy ready\r\n") != nil {
		return
	}
	var user string
	for {
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				ss.write("-ERR Line too long\r\n")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "CAPA":
			if ss.write(ss.pop3Capa()) != nil {
				return
			}
		case "NOOP":
			if ss.write("+OK\r\n") != nil {
				return
			}
		case "QUIT":
			ss.write("+OK Bye\r\n")
			return
		case "STLS":
			if ss.s.cfg.TLS != TLSStartTLS || ss.tls {
				if !ss.pop3Err("STLS not available") {
					return
				}
				continue
			}
			if ss.write("+OK Begin TLS negotiation\r\n") != nil || !ss.startTLS() {
				return
			}
			user = ""
		case "USER":
			if arg == "" {
				if !ss.pop3Err("USER needs a name") {
					return
				}
				continue
			}
			if ss.needsTLS() {
				if !ss.pop3Err("[AUTH] Run STLS first") {
					return
				}
				continue
			}
			user = arg
			if ss.write("+OK\r\n") != nil {
				return
			}
		case "PASS":
			if user == "" {
				if !ss.pop3Err("USER first") {
					return
				}
				continue
			}
			u := user
			user = ""
			if done := ss.pop3Login(u, arg); done {
				return
			}
		case "AUTH":
			mech, ir, hasIR := strings.Cut(arg, " ")
			if mech == "" {
				if ss.write("+OK\r\nPLAIN\r\n.\r\n") != nil {
					return
				}
				continue
			}
			if !strings.EqualFold(mech, "PLAIN") {
				if !ss.pop3Err("Unsupported authentication mechanism") {
					return
				}
				continue
			}
			if !hasIR && ss.needsTLS() {
				// Refuse before the "+" that would ask for the password in
				// clear text.
				if !ss.pop3Err("[AUTH] Run STLS first") {
					return
				}
				continue
			}
			if !hasIR {
				var ok bool
				ir, ok, err = ss.saslResponse("+ \r\n", "-ERR Line too long\r\n", "-ERR Authentication cancelled\r\n")
				if err != nil {
					return
				}
				if !ok {
					continue
				}
			} else if ir == "=" {
				ir = ""
			}
			u, p, err := decodePlain(ir)
			if err != nil {
				if !ss.pop3Err("Invalid SASL PLAIN response") {
					return
				}
				continue
			}
			if done := ss.pop3Login(u, p); done {
				return
			}
		default:
			if !ss.pop3Err("Log in first") {
				return
			}
		}
	}
}

func (ss *session) pop3Err(text string) bool {
	ss.errors++
	if ss.errors >= maxErrors {
		ss.write("-ERR " + text + "; too many invalid commands\r\n")
		return false
	}
	return ss.write("-ERR "+text+"\r\n") == nil
}

func (ss *session) pop3Login(user, pass string) bool {
	if ss.needsTLS() {
		return ss.write("-ERR [AUTH] Run STLS first\r\n") != nil
	}
	acct, err := ss.checkPassword(user, pass)
	if err != nil {
		if errors.Is(err, loginBadPassword) {
			return ss.write("-ERR [AUTH] Authentication failed\r\n") != nil
		}
		return true
	}
	_, u, err := ss.upstreamLogin(acct, (*upConn).pop3Login)
	switch {
	case errors.Is(err, loginTooMany):
		return ss.write("-ERR [IN-USE] Too many connections for this account\r\n") != nil
	case err != nil:
		return ss.write("-ERR [SYS/TEMP] "+upstreamFailure(err)+"\r\n") != nil
	}
	if ss.write("+OK Logged in\r\n") != nil {
		ss.s.releaseAccount(acct.Name)
		return true
	}
	ss.next = &relayTo{acct, u}
	return true
}

// pop3Capa lists the upstream's capabilities without the login ones, plus
// the proxy's.
func (ss *session) pop3Capa() string {
	var b strings.Builder
	b.WriteString("+OK Capability list follows\r\n")
	for _, c := range ss.s.upstreamCaps() {
		k, _, _ := strings.Cut(strings.ToUpper(c), " ")
		switch k {
		case "SASL", "STLS", "USER", "IMPLEMENTATION", "LOGIN-DELAY":
			continue
		}
		b.WriteString(c + "\r\n")
	}
	if ss.s.cfg.TLS == TLSStartTLS && !ss.tls {
		b.WriteString("STLS\r\n")
	} else {
		b.WriteString("USER\r\nSASL PLAIN\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// pop3Prelude reads the greeting, upgrades with STLS when asked, and reads
// CAPA (a server without CAPA is taken to offer XOAUTH2).
func (u *upConn) pop3Prelude(ctx context.Context) error {
	g, err := u.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(g, "+OK") {
		return errors.New("unexpected greeting " + quoteIMAP(capText(g, 200)))
	}
	if u.acct.Upstream.Security == securityStartTLS {
		if err := u.send("STLS"); err != nil {
			return err
		}
		l, err := u.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			return errors.New("STLS: server said " + quoteIMAP(capText(l, 200)))
		}
		if err := u.startTLS(ctx); err != nil {
			return err
		}
	}
	if err := u.send("CAPA"); err != nil {
		return err
	}
	l, err := u.line()
	if err != nil {
		return err
	}
	u.preCaps = []string{}
	if !strings.HasPrefix(l, "+OK") {
		return nil
	}
	for n := 0; n < 1000; n++ {
		l, err := u.line()
		if err != nil {
			return err
		}
		if l == "." {
			return nil
		}
		u.preCaps = append(u.preCaps, strings.TrimPrefix(l, "."))
	}
	return errors.New("CAPA: too many lines")
}

// pop3Login authenticates in two steps (AUTH MECH, then the response on its
// own line after "+"): Exchange Online refuses the one-line form.
func (u *upConn) pop3Login(ctx context.Context, token string) (string, error) {
	if err := u.pop3Prelude(ctx); err != nil {
		return "", err
	}
	offered := []string{"XOAUTH2"}
	for _, c := range u.preCaps {
		if f := strings.Fields(c); len(f) > 0 && strings.EqualFold(f[0], "SASL") {
			offered = f[1:]
		}
	}
	c, ir, err := u.saslClient(offered, token)
	if err != nil {
		return "", err
	}
	if err := u.send("AUTH " + u.mech); err != nil {
		return "", err
	}
	sentIR := false
	for rounds := 0; rounds < 4; rounds++ {
		l, err := u.line()
		if err != nil {
			return "", err
		}
		switch {
		case strings.HasPrefix(l, "+OK"):
			return "", nil
		case strings.HasPrefix(l, "+"):
			ans := ir
			if sentIR {
				ans, _ = answerChallenge(c, strings.TrimPrefix(l, "+"))
			}
			sentIR = true
			if err := u.send(ans); err != nil {
				return "", err
			}
		default:
			return "", failure(c, l, pop3TokenRefused(l))
		}
	}
	return "", errors.New("server kept sending challenges")
}

// pop3TokenRefused says whether a -ERR answer to AUTH refuses the token:
// Dovecot says -ERR [AUTH], Exchange Online a bare "-ERR Authentication
// failure: unknown user name or bad password.". A response code for a
// passing condition (RFC 3206 SYS/TEMP, RFC 2449 IN-USE and LOGIN-DELAY)
// or a server fault (SYS/PERM) is not the token's fault.
func pop3TokenRefused(line string) bool {
	if !hasPrefixFold(line, "-ERR") {
		return false
	}
	up := strings.ToUpper(line)
	for _, code := range []string{"[SYS/TEMP]", "[SYS/PERM]", "[IN-USE]", "[LOGIN-DELAY]"} {
		if strings.Contains(up, code) {
			return false
		}
	}
	return true
}
