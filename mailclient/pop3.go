package mailclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/pop3"
	"github.com/mailoauth/mailoauth/sasl"
)

// CheckPOP3 connects to a POP3 server, logs in with the token (AUTH in the
// two-step form Exchange requires) and reads STAT (and, with
// Options.Recent, the newest messages' headers). POP3 has no read-only
// mode, but RETR alone changes nothing: messages are only deleted by DELE.
func CheckPOP3(ctx context.Context, srv Server, opts Options) (*Report, error) {
	rec := newRecorder(srv, opts)
	if srv.Protocol != POP3 {
		return rec.rep, rec.fail("connect", "", fmt.Errorf("%s is not a POP3 url", srv.URL()))
	}
	conn, stop, err := dial(ctx, srv, opts, rec)
	if err != nil {
		return rec.rep, err
	}
	defer stop()
	c, err := pop3.NewClient(conn)
	if err != nil {
		conn.Close()
		return rec.rep, rec.fail("greeting", "no usable greeting", err)
	}
	defer c.Close()
	caps, capaErr := capa(c)
	if capaErr != nil {
		return rec.rep, rec.fail("capabilities", "CAPA failed", capaErr)
	}
	if srv.Security == StartTLS {
		// Without CAPA (caps nil) we cannot know; try STLS and let the
		// server refuse it.
		if _, ok := caps["STLS"]; !ok && caps != nil {
			return rec.rep, rec.fail("starttls", "not logging in over plain text", errNoStartTLS)
		}
		if err := c.StartTLS(tlsConfig(srv, opts)); err != nil {
			var pe *pop3.Error
			if errors.As(err, &pe) {
				err = fmt.Errorf("%w: %w", errNoStartTLS, err)
			}
			return rec.rep, rec.fail("starttls", "could not start TLS; not logging in over plain text", err)
		}
		rec.ok("starttls", tlsDetail(c.Conn().(*tls.Conn)))
		// RFC 2595 §4: capabilities may change after STLS; ask again.
		if caps, capaErr = capa(c); capaErr != nil {
			return rec.rep, rec.fail("capabilities", "CAPA failed", capaErr)
		}
	}
	rec.greeted()
	mechs := caps["SASL"]
	if caps == nil {
		// A server without CAPA (RFC 2449 is optional) does not list its
		// SASL mechanisms: try the one asked for, else XOAUTH2, the one
		// every OAuth POP3 server we know takes.
		mechs = []string{sasl.XOAUTH2}
		if opts.Mechanism != "" {
			mechs = []string{strings.ToUpper(opts.Mechanism)}
		}
		rec.ok("capabilities", "no CAPA; trying "+mechs[0])
	} else {
		rec.ok("capabilities", "offers "+mechList(mechs))
	}

	sc, err := saslClient(srv, opts, mechs, rec)
	if err != nil {
		return rec.rep, err
	}
	if err := sasl.Result(sc, c.Auth(sc)); err != nil {
		return rec.rep, rec.fail("authenticate", rec.rep.Mechanism+" login as "+opts.User+" refused", err)
	}
	rec.ok("authenticate", authDetail(rec.rep.Mechanism, opts.User))

	n, size, err := c.Stat()
	if err != nil {
		return rec.rep, rec.fail("stat", "STAT failed", err)
	}
	rec.ok("stat", fmt.Sprintf("mailbox has %d messages, %d bytes", n, size))

	if opts.Recent > 0 && n > 0 {
		msgs, err := retrRecent(c, n, opts.Recent)
		if err != nil {
			return rec.rep, rec.fail("fetch", "could not read the newest messages", err)
		}
		rec.rep.Messages = msgs
		rec.ok("fetch", fmt.Sprintf("read %d message headers", len(msgs)))
	}
	c.Quit()
	return rec.rep, nil
}

// capa runs CAPA; a -ERR (no CAPA support) gives nil caps and no error.
func capa(c *pop3.Client) (map[string][]string, error) {
	caps, err := c.Capabilities()
	var pe *pop3.Error
	if errors.As(err, &pe) {
		return nil, nil
	}
	return caps, err
}

func retrRecent(c *pop3.Client, total, n int) ([]Summary, error) {
	uids := map[int]string{}
	// UIDL is optional (RFC 1939 §7); a server without it gets no ids.
	if list, err := c.UIDL(); err == nil {
		for _, m := range list {
			uids[m.ID] = m.UID
		}
	} else if pe := (*pop3.Error)(nil); !errors.As(err, &pe) {
		return nil, err
	}
	var out []Summary
	for id := total; id >= 1 && len(out) < n; id-- {
		raw, err := c.Retr(id)
		if err != nil {
			return nil, err
		}
		s := Summary{ID: uids[id]}
		if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
			s.Subject = decodeHeader(m.Header.Get("Subject"))
			if from, err := m.Header.AddressList("From"); err == nil && len(from) > 0 {
				s.From = from[0].Address
			}
			if d, err := m.Header.Date(); err == nil {
				s.Date = d.In(time.UTC)
			}
			s.MessageID = trimAngles(m.Header.Get("Message-Id"))
		}
		out = append(out, s)
	}
	return out, nil
}
