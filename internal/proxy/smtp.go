package proxy

import (
	"context"
	"errors"
	"strings"
)

// smtp runs the SMTP submission dialogue up to AUTH (RFC 5321, 4954,
// 3207): EHLO/HELO, STARTTLS, AUTH PLAIN and AUTH LOGIN, RSET, NOOP, QUIT.
// Mail commands wait for login. After login the client goes on with MAIL
// FROM on the upstream session, which has had its own EHLO.
func (ss *session) smtp() {
	if ss.write("220 "+ss.s.cfg.Hostname+" ESMTP mailoauth proxy ready\r\n") != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				ss.write("500 5.5.6 Line too long\r\n")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if arg == "" {
				if !ss.smtpErr("501 5.5.4 EHLO needs a domain") {
					return
				}
				continue
			}
			if ss.write(ss.smtpEHLO()) != nil {
				return
			}
		case "HELO":
			if ss.write("250 "+ss.s.cfg.Hostname+"\r\n") != nil {
				return
			}
		case "NOOP":
			if ss.write("250 2.0.0 OK\r\n") != nil {
				return
			}
		case "RSET":
			if ss.write("250 2.0.0 OK\r\n") != nil {
				return
			}
		case "QUIT":
			ss.write("221 2.0.0 Bye\r\n")
			return
		case "STARTTLS":
			if ss.s.cfg.TLS != TLSStartTLS || ss.tls {
				if !ss.smtpErr("502 5.5.1 STARTTLS not available") {
					return
				}
				continue
			}
			if ss.write("220 2.0.0 Ready to start TLS\r\n") != nil || !ss.startTLS() {
				return
			}
		case "AUTH":
			if ss.needsTLS() {
				if !ss.smtpErr("530 5.7.0 Must issue a STARTTLS command first") {
					return
				}
				continue
			}
			user, pass, ok, err := ss.smtpAuthExchange(arg)
			if err != nil {
				return
			}
			if !ok {
				continue
			}
			if done := ss.smtpLogin(user, pass); done {
				return
			}
		case "MAIL", "RCPT", "DATA", "BDAT", "VRFY", "EXPN":
			if !ss.smtpErr("530 5.7.0 Authentication required") {
				return
			}
		default:
			if !ss.smtpErr("500 5.5.2 Unrecognized command") {
				return
			}
		}
	}
}

// smtpAuthExchange runs AUTH PLAIN or AUTH LOGIN with the client; ok false
// means a failure line was sent and the session goes on; err ends it.
func (ss *session) smtpAuthExchange(arg string) (user, pass string, ok bool, err error) {
	mech, ir, hasIR := strings.Cut(arg, " ")
	// ask sends a 334 challenge and reads the answer; "*" cancels.
	ask := func(challenge string) (string, bool, error) {
		return ss.saslResponse("334 "+challenge+"\r\n", "500 5.5.6 Line too long\r\n", "501 5.0.0 Authentication cancelled\r\n")
	}
	bad := func(text string) (string, string, bool, error) {
		if !ss.smtpErr(text) {
			return "", "", false, errors.New("too many errors")
		}
		return "", "", false, nil
	}
	if hasIR && ir == "=" {
		ir = ""
	}
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if !hasIR {
			var more bool
			if ir, more, err = ask(""); err != nil || !more {
				return "", "", false, err
			}
		}
		u, p, derr := decodePlain(ir)
		if derr != nil {
			return bad("501 5.5.2 Invalid SASL PLAIN response")
		}
		return u, p, true, nil
	case "LOGIN":
		// The LOGIN mechanism (draft-murchison-sasl-login): user name and
		// password in turn, each base64; the optional initial response is
		// the user name.
		var u64 string
		if hasIR {
			u64 = ir
		} else {
			var more bool
			if u64, more, err = ask("VXNlcm5hbWU6"); err != nil || !more {
				return "", "", false, err
			}
		}
		u, derr := decodeB64(u64)
		if derr != nil {
			return bad("501 5.5.2 Invalid base64")
		}
		p64, more, err := ask("UGFzc3dvcmQ6")
		if err != nil || !more {
			return "", "", false, err
		}
		p, derr := decodeB64(p64)
		if derr != nil {
			return bad("501 5.5.2 Invalid base64")
		}
		return u, p, true, nil
	case "":
		return bad("501 5.5.4 AUTH needs a mechanism")
	default:
		return bad("504 5.5.4 Unsupported authentication mechanism")
	}
}

func (ss *session) smtpErr(line string) bool {
	ss.errors++
	if ss.errors >= maxErrors {
		ss.write(line+"\r\n", "421 4.7.0 Too many errors, closing\r\n")
		return false
	}
	return ss.write(line+"\r\n") == nil
}

func (ss *session) smtpLogin(user, pass string) bool {
	acct, err := ss.checkPassword(user, pass)
	if err != nil {
		if errors.Is(err, loginBadPassword) {
			return ss.write("535 5.7.8 Authentication credentials invalid\r\n") != nil
		}
		return true
	}
	_, u, err := ss.upstreamLogin(acct, func(u *upConn, ctx context.Context, token string) (string, error) {
		return u.smtpLogin(ctx, token, ss.s.cfg.Hostname)
	})
	switch {
	case errors.Is(err, loginTooMany):
		return ss.write("421 4.7.0 Too many connections for this account\r\n") != nil
	case err != nil:
		return ss.write("454 4.7.0 "+upstreamFailure(err)+"\r\n") != nil
	}
	if ss.write("235 2.7.0 Authentication successful\r\n") != nil {
		ss.s.releaseAccount(acct.Name)
		return true
	}
	ss.next = &relayTo{acct, u}
	return true
}

// smtpEHLO relays the upstream's EHLO keywords minus AUTH and STARTTLS,
// plus the proxy's own.
func (ss *session) smtpEHLO() string {
	lines := []string{ss.s.cfg.Hostname}
	for _, c := range ss.s.upstreamCaps() {
		k, _, _ := strings.Cut(strings.ToUpper(c), " ")
		if k == "AUTH" || k == "STARTTLS" || strings.HasPrefix(k, "AUTH=") {
			continue
		}
		lines = append(lines, c)
	}
	if ss.s.cfg.TLS == TLSStartTLS && !ss.tls {
		lines = append(lines, "STARTTLS")
	} else {
		lines = append(lines, "AUTH PLAIN LOGIN")
	}
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + l + "\r\n")
	}
	return b.String()
}

// smtpReply reads one (possibly multi-line) reply: its code and lines'
// texts.
func (u *upConn) smtpReply() (int, []string, error) {
	var texts []string
	for n := 0; n < 1000; n++ {
		l, err := u.line()
		if err != nil {
			return 0, nil, err
		}
		if len(l) < 3 || l[0] < '1' || l[0] > '5' {
			return 0, nil, errors.New("malformed reply " + quoteIMAP(capText(l, 200)))
		}
		code := int(l[0]-'0')*100 + int(l[1]-'0')*10 + int(l[2]-'0')
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		texts = append(texts, text)
		if len(l) == 3 || l[3] == ' ' {
			return code, texts, nil
		}
	}
	return 0, nil, errors.New("reply too long")
}

func (u *upConn) smtpCmd(cmd string, want int) ([]string, error) {
	if err := u.send(cmd); err != nil {
		return nil, err
	}
	code, texts, err := u.smtpReply()
	if err != nil {
		return nil, err
	}
	if code != want {
		verb, _, _ := strings.Cut(cmd, " ")
		return nil, errors.New(verb + ": server said " + quoteIMAP(capText(strings.Join(texts, " / "), 200)))
	}
	return texts, nil
}

// smtpPrelude reads the greeting, says EHLO, upgrades with STARTTLS when
// asked (and says EHLO again), and keeps the EHLO keywords.
func (u *upConn) smtpPrelude(ctx context.Context, hostname string) error {
	code, texts, err := u.smtpReply()
	if err != nil {
		return err
	}
	if code != 220 {
		return errors.New("unexpected greeting " + quoteIMAP(capText(strings.Join(texts, " / "), 200)))
	}
	ehlo, err := u.smtpCmd("EHLO "+hostname, 250)
	if err != nil {
		return err
	}
	if u.acct.Upstream.Security == securityStartTLS {
		if _, err := u.smtpCmd("STARTTLS", 220); err != nil {
			return err
		}
		if err := u.startTLS(ctx); err != nil {
			return err
		}
		if ehlo, err = u.smtpCmd("EHLO "+hostname, 250); err != nil {
			return err
		}
	}
	u.preCaps = append([]string{}, ehlo[1:]...)
	return nil
}

// smtpLogin authenticates with the token (initial response on the AUTH
// line, RFC 4954).
func (u *upConn) smtpLogin(ctx context.Context, token, hostname string) (string, error) {
	if err := u.smtpPrelude(ctx, hostname); err != nil {
		return "", err
	}
	var offered []string
	for _, c := range u.preCaps {
		f := strings.Fields(c)
		if len(f) > 0 && (strings.EqualFold(f[0], "AUTH")) {
			offered = f[1:]
		}
	}
	c, ir, err := u.saslClient(offered, token)
	if err != nil {
		return "", err
	}
	if err := u.send("AUTH " + u.mech + " " + ir); err != nil {
		return "", err
	}
	for rounds := 0; rounds < 4; rounds++ {
		code, texts, err := u.smtpReply()
		if err != nil {
			return "", err
		}
		switch {
		case code == 235:
			return "", nil
		case code == 334:
			ans, _ := answerChallenge(c, texts[0])
			if err := u.send(ans); err != nil {
				return "", err
			}
		default:
			line := strings.Join(texts, " / ")
			return "", failure(c, line, code == 535 || c.Failure() != nil)
		}
	}
	return "", errors.New("server kept sending challenges")
}
