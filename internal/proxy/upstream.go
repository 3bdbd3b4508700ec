package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/sasl"
)

// upConn is the connection to the real server while the proxy logs in.
// The login is written here on raw lines rather than with go-imap's
// imapclient, go-smtp or internal/pop3 (which mailclient uses) because the
// relay needs the very connection and the bytes already read after login,
// which those clients keep to themselves.
type upConn struct {
	acct *Account
	conn net.Conn
	r    *bufio.Reader
	mech string
	// preCaps are the server's capabilities before login (IMAP
	// CAPABILITY atoms, POP3 CAPA lines, SMTP EHLO keywords), for the
	// local side's own list.
	preCaps []string
}

// dialUpstream connects to acct's server, with the TLS handshake for
// implicit TLS (STARTTLS is each protocol's business).
func dialUpstream(ctx context.Context, acct *Account) (*upConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", acct.Upstream.Addr())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	u := &upConn{acct: acct, conn: c}
	if acct.Upstream.Security == mailclient.ImplicitTLS {
		if err := u.startTLS(ctx); err != nil {
			c.Close()
			return nil, err
		}
	} else {
		u.r = bufio.NewReaderSize(c, 4096)
	}
	return u, nil
}

// startTLS runs the verified client handshake on the connection.
func (u *upConn) startTLS(ctx context.Context) error {
	if u.r != nil && u.r.Buffered() > 0 {
		return errors.New("server sent data before the TLS handshake")
	}
	var cfg *tls.Config
	if u.acct.UpstreamTLS != nil {
		cfg = u.acct.UpstreamTLS.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.acct.Upstream.Host
	}
	tc := tls.Client(u.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake with %s: %w", u.acct.Upstream.Addr(), err)
	}
	u.conn = tc
	u.r = bufio.NewReaderSize(tc, 4096)
	return nil
}

func (u *upConn) line() (string, error) {
	l, err := readLine(u.r, maxUpstreamLine)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "", errors.New("server closed the connection")
	}
	return l, err
}

func (u *upConn) send(s string) error {
	_, err := io.WriteString(u.conn, s+"\r\n")
	return err
}

// saslClient builds the OAuth SASL client for the offered mechanisms.
func (u *upConn) saslClient(offered []string, token string) (sasl.Client, string, error) {
	mech, err := sasl.Choose(offered, u.acct.Mechanism)
	if err != nil {
		return nil, "", fmt.Errorf("offered %v: %w", offered, err)
	}
	c, err := sasl.New(mech, sasl.Options{User: u.acct.Email, Token: token, Host: u.acct.Upstream.Host, Port: u.acct.Upstream.Port})
	if err != nil {
		return nil, "", err
	}
	_, ir, err := c.Start()
	if err != nil {
		return nil, "", err
	}
	u.mech = mech
	return c, base64.StdEncoding.EncodeToString(ir), nil
}

// answerChallenge turns a server challenge into the client's answer line;
// an error challenge gets the acknowledgement the mechanism needs, so the
// server sends its final failure at once (never a hang).
func answerChallenge(c sasl.Client, b64 string) (string, error) {
	ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "*", fmt.Errorf("server challenge is not base64")
	}
	resp, err := c.Next(ch)
	if err != nil {
		return "*", err
	}
	return base64.StdEncoding.EncodeToString(resp), nil
}

// failure wraps the server's final refusal: a token refusal when the server
// sent an OAuth error challenge or an authentication-failed status.
func failure(c sasl.Client, line string, authFailed bool) error {
	err := fmt.Errorf("server said %q", capText(line, 200))
	if f := c.Failure(); f != nil || authFailed {
		return &rejectedError{err: sasl.Result(c, err)}
	}
	return err
}

func capText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// capCache remembers each upstream's pre-login capabilities, learnt on
// every login, so the local greeting/CAPABILITY/CAPA/EHLO can offer what
// the server behind it offers.
type capCache struct {
	mu    sync.Mutex
	cache map[string][]string
}

func (c *capCache) put(addr string, caps []string) {
	if caps == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = map[string][]string{}
	}
	c.cache[addr] = caps
}

// upstreamCaps returns the capabilities shared by every upstream of the listener,
// or nil while one of them is unknown.
func (s *Server) upstreamCaps() []string {
	s.caps.mu.Lock()
	defer s.caps.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for i, a := range s.cfg.Accounts {
		addr := a.Upstream.Addr()
		if seen[addr] {
			continue
		}
		seen[addr] = true
		caps, ok := s.caps.cache[addr]
		if !ok {
			return nil
		}
		if i == 0 {
			out = append([]string(nil), caps...)
			continue
		}
		out = intersect(out, caps)
	}
	return out
}

func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[strings.ToUpper(x)] = true
	}
	var out []string
	for _, x := range a {
		if in[strings.ToUpper(x)] {
			out = append(out, x)
		}
	}
	return out
}

// Probe connects to each distinct upstream once, without logging in, to
// learn its capabilities for the local greeting; errors are only logged
// (the first real login fills the cache too).
func (s *Server) Probe(ctx context.Context) {
	seen := map[string]bool{}
	for i := range s.cfg.Accounts {
		a := &s.cfg.Accounts[i]
		if seen[a.Upstream.Addr()] {
			continue
		}
		seen[a.Upstream.Addr()] = true
		u, err := dialUpstream(ctx, a)
		if err != nil {
			s.log.Warn("upstream probe failed", "upstream", a.Upstream.String(), "err", err)
			continue
		}
		stop := context.AfterFunc(ctx, func() { u.conn.Close() })
		switch s.cfg.Protocol {
		case "imap":
			err = u.imapPrelude(ctx)
			u.send("P9 LOGOUT")
		case "pop3":
			err = u.pop3Prelude(ctx)
			u.send("QUIT")
		case "smtp":
			err = u.smtpPrelude(ctx, s.cfg.Hostname)
			u.send("QUIT")
		}
		stop()
		u.conn.Close()
		if err != nil {
			s.log.Warn("upstream probe failed", "upstream", a.Upstream.String(), "err", err)
			continue
		}
		s.caps.put(a.Upstream.Addr(), u.preCaps)
	}
}

const securityStartTLS = mailclient.StartTLS
