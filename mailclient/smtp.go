package mailclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/sasl"
)

// CheckSMTP connects to an SMTP submission server, logs in with the token
// and quits without sending anything.
func CheckSMTP(ctx context.Context, srv Server, opts Options) (*Report, error) {
	rec := newRecorder(srv, opts)
	c, stop, err := smtpLogin(ctx, srv, opts, rec)
	if err != nil {
		return rec.rep, err
	}
	defer stop()
	defer c.Close()
	c.Quit()
	return rec.rep, nil
}

// Send logs in like CheckSMTP and submits msg (From defaulting to
// opts.User), with To, Cc and Bcc as envelope recipients. The report's last
// step, "send", carries the server's acceptance or its refusal (for
// Exchange, "554 5.2.252 SendAsDenied" when From is not the mailbox's).
func Send(ctx context.Context, srv Server, opts Options, msg *Message) (*Report, error) {
	rec := newRecorder(srv, opts)
	m := *msg
	if m.From == "" {
		m.From = opts.User
	}
	raw, err := m.Bytes()
	if err != nil {
		return rec.rep, rec.fail("message", "could not build the message", err)
	}
	from, err := parseAddrs([]string{m.From})
	if err != nil {
		return rec.rep, rec.fail("message", "bad From address", err)
	}
	var rcpts []string
	for _, r := range m.Recipients() {
		a, err := parseAddrs([]string{r})
		if err != nil {
			return rec.rep, rec.fail("message", "bad recipient", err)
		}
		rcpts = append(rcpts, a[0].Address)
	}
	c, stop, err := smtpLogin(ctx, srv, opts, rec)
	if err != nil {
		return rec.rep, err
	}
	defer stop()
	defer c.Close()
	if err := c.SendMail(from[0].Address, rcpts, bytes.NewReader(raw)); err != nil {
		return rec.rep, rec.fail("send", "the server did not accept the message", err)
	}
	rec.ok("send", fmt.Sprintf("accepted %d bytes for %d recipients", len(raw), len(rcpts)))
	c.Quit()
	return rec.rep, nil
}

// smtpLogin connects, greets, upgrades with STARTTLS when the URL says so,
// and authenticates. On success the caller owns the client and stop.
func smtpLogin(ctx context.Context, srv Server, opts Options, rec *recorder) (*smtp.Client, func() bool, error) {
	if srv.Protocol != SMTP {
		return nil, nil, rec.fail("connect", "", fmt.Errorf("%s is not an SMTP url", srv.URL()))
	}
	conn, stop, err := dial(ctx, srv, opts, rec)
	if err != nil {
		return nil, nil, err
	}
	fail := func(step, detail string, err error) (*smtp.Client, func() bool, error) {
		stop()
		conn.Close()
		return nil, nil, rec.fail(step, detail, err)
	}
	var c *smtp.Client
	if srv.Security == StartTLS {
		c, err = smtp.NewClientStartTLS(conn, tlsConfig(srv, opts))
		if err != nil {
			if strings.Contains(err.Error(), "doesn't support STARTTLS") {
				err = errNoStartTLS
			}
			return fail("starttls", "could not start TLS; not logging in over plain text", err)
		}
		// The handshake runs on the next command: EHLO again, over TLS.
		if err := c.Hello("localhost"); err != nil {
			return fail("starttls", "TLS handshake or EHLO after STARTTLS failed", err)
		}
		rec.ok("starttls", "upgraded to TLS")
	} else {
		c = smtp.NewClient(conn)
		if err := c.Hello("localhost"); err != nil {
			return fail("greeting", "greeting or EHLO failed", err)
		}
	}
	rec.greeted()
	if dl, ok := ctx.Deadline(); ok {
		c.CommandTimeout = time.Until(dl)
		c.SubmissionTimeout = time.Until(dl)
	}
	_, authParam := c.Extension("AUTH")
	mechs := strings.Fields(authParam)
	rec.ok("capabilities", "offers "+mechList(mechs))
	sc, err := saslClient(srv, opts, mechs, rec)
	if err != nil {
		stop()
		c.Close()
		return nil, nil, err
	}
	if err := sasl.Result(sc, c.Auth(sc)); err != nil {
		stop()
		c.Close()
		return nil, nil, rec.fail("authenticate", rec.rep.Mechanism+" login as "+opts.User+" refused", err)
	}
	rec.ok("authenticate", authDetail(rec.rep.Mechanism, opts.User))
	return c, stop, nil
}
