package mailclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailoauth/mailoauth/sasl"
)

// CheckIMAP connects to an IMAP server, logs in with the token and reads
// the INBOX status (and, with Options.Recent, the newest messages'
// envelopes, read-only so no \Seen flag is set). The report lists every
// step; the error, if any, is the failed step's (errors.As finds
// *sasl.AuthError and *imap.Error in it).
func CheckIMAP(ctx context.Context, srv Server, opts Options) (*Report, error) {
	rec := newRecorder(srv, opts)
	if srv.Protocol != IMAP {
		return rec.rep, rec.fail("connect", "", fmt.Errorf("%s is not an IMAP url", srv.URL()))
	}
	conn, stop, err := dial(ctx, srv, opts, rec)
	if err != nil {
		return rec.rep, err
	}
	defer stop()
	iopts := &imapclient.Options{TLSConfig: tlsConfig(srv, opts)}
	if srv.Security == StartTLS {
		tc, err := imapStartTLS(conn, tlsConfig(srv, opts))
		if err != nil {
			conn.Close()
			return rec.rep, rec.fail("starttls", "could not start TLS; not logging in over plain text", err)
		}
		rec.ok("starttls", tlsDetail(tc.(*saslEmptyFix).Conn.(*tls.Conn)))
		conn = tc
	} else {
		conn = &saslEmptyFix{Conn: conn}
	}
	c := imapclient.New(conn, iopts)
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		return rec.rep, rec.fail("greeting", "no usable greeting", err)
	}
	rec.greeted()
	mechs := c.Caps().AuthMechanisms()
	rec.ok("capabilities", "offers "+mechList(mechs))

	sc, err := saslClient(srv, opts, mechs, rec)
	if err != nil {
		return rec.rep, err
	}
	if err := sasl.Result(sc, c.Authenticate(sc)); err != nil {
		return rec.rep, rec.fail("authenticate", rec.rep.Mechanism+" login as "+opts.User+" refused", err)
	}
	rec.ok("authenticate", authDetail(rec.rep.Mechanism, opts.User))

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil {
		return rec.rep, rec.fail("inbox", "STATUS INBOX failed", err)
	}
	var total, unseen uint32
	if st.NumMessages != nil {
		total = *st.NumMessages
	}
	if st.NumUnseen != nil {
		unseen = *st.NumUnseen
	}
	rec.ok("inbox", fmt.Sprintf("INBOX has %d messages, %d unseen", total, unseen))

	if opts.Recent > 0 && total > 0 {
		msgs, err := fetchRecent(c, total, opts.Recent)
		if err != nil {
			return rec.rep, rec.fail("fetch", "could not read the newest messages", err)
		}
		rec.rep.Messages = msgs
		rec.ok("fetch", fmt.Sprintf("read %d message envelopes", len(msgs)))
	}
	// A failed LOGOUT changes nothing the user needs to know.
	c.Logout().Wait()
	return rec.rep, nil
}

// fetchRecent examines INBOX (read-only) and returns the envelopes of the
// newest n of its total messages, newest first.
func fetchRecent(c *imapclient.Client, total uint32, n int) ([]Summary, error) {
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil, err
	}
	first := uint32(1)
	if uint32(n) < total {
		first = total - uint32(n) + 1
	}
	set := imap.SeqSetNum()
	set.AddRange(first, total)
	bufs, err := c.Fetch(set, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(bufs))
	for i := len(bufs) - 1; i >= 0; i-- {
		b := bufs[i]
		s := Summary{ID: strconv.FormatUint(uint64(b.UID), 10)}
		if e := b.Envelope; e != nil {
			s.Subject, s.Date, s.MessageID = e.Subject, e.Date, e.MessageID
			if len(e.From) > 0 {
				s.From = e.From[0].Addr()
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func mechList(mechs []string) string {
	if len(mechs) == 0 {
		return "no SASL mechanisms"
	}
	return "SASL " + strings.Join(mechs, " ")
}
