package exchange

import (
	"bytes"
	"net"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// imapFailure is Exchange's reply to every failed AUTHENTICATE (reference
// §5.2): no detail, whatever was wrong.
var imapFailure = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "AUTHENTICATE failed."}

// imapSession is one IMAP connection: unauthenticated until XOAUTH2 (or
// OAUTHBEARER when switched on) succeeds, then go-imap's in-memory backend
// session over the mailbox's IMAP view.
type imapSession struct {
	*imapmemserver.UserSession // nil until authenticated
	s                          *Server
	remote                     string
	mailbox                    string
}

var (
	_ imapserver.Session     = (*imapSession)(nil)
	_ imapserver.SessionSASL = (*imapSession)(nil)
)

// Login refuses basic auth, as Exchange Online does.
func (is *imapSession) Login(username, password string) error {
	is.s.log.Warn("exchange login refused", "protocol", "imap", "mechanism", "LOGIN", "user", username,
		"remote", is.remote, "reason", "basic authentication is disabled")
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "LOGIN failed."}
}

// AuthenticateMechanisms is what CAPABILITY advertises: XOAUTH2 only, like
// Exchange; OAUTHBEARER too when switched on (Gmail-like tests).
func (is *imapSession) AuthenticateMechanisms() []string {
	if is.s.OAuthBearer() {
		return []string{"XOAUTH2", "OAUTHBEARER"}
	}
	return []string{"XOAUTH2"}
}

// Authenticate starts a SASL exchange.
func (is *imapSession) Authenticate(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" && !(mech == "OAUTHBEARER" && is.s.OAuthBearer()) {
		is.s.log.Warn("exchange login refused", "protocol", "imap", "mechanism", mech, "remote", is.remote,
			"reason", "mechanism not offered")
		return nil, imapFailure
	}
	return &saslServer{s: is.s, proto: IMAP, mech: mech, failure: imapFailure, remote: is.remote,
		onSuccess: func(g Grant) error {
			is.mailbox = g.Mailbox
			is.UserSession = imapmemserver.NewUserSession(is.s.store.imapUser(g.Mailbox))
			return nil
		}}, nil
}

// Close ends the backend session and reconciles IMAP-side deletions into
// the shared store.
func (is *imapSession) Close() error {
	if is.UserSession == nil {
		return nil
	}
	err := is.UserSession.Close()
	is.s.store.list(is.mailbox, "") // reconcile now rather than on next use
	return err
}

// newIMAPServer builds the go-imap server. InsecureAuth is on because the
// listener does TLS itself (the session sees a wrapped conn) and the plain
// port exists only when a test asks for it.
func (s *Server) newIMAPServer() *imapserver.Server {
	return imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{s: s, remote: c.NetConn().RemoteAddr().String()}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapNamespace: {}},
		Logger:       slogPrintf{s.log},
		InsecureAuth: true,
	})
}

// imapRewriter returns the line rewriter for IMAP connections: go-imap
// hard-codes its greeting ("IMAP server ready") and its AUTHENTICATE
// success text, and the emulator must show Exchange's. It stops rewriting
// after the first successful AUTHENTICATE.
func (s *Server) imapRewriter() func(line []byte) ([]byte, bool) {
	greeted := false
	return func(line []byte) ([]byte, bool) {
		if !greeted {
			greeted = true
			return []byte("* OK The Microsoft Exchange IMAP4 service is ready. [" + s.serverID() + "]\r\n"), true
		}
		// "<tag> OK [CAPABILITY …] XOAUTH2 authentication successful"
		if i := bytes.Index(line, []byte(" OK ")); i > 0 && bytes.HasSuffix(line, []byte(" authentication successful\r\n")) {
			return append(append([]byte(nil), line[:i]...), " OK AUTHENTICATE completed.\r\n"...), false
		}
		// go-imap's own AUTHENTICATE failures (bad base64, "*" cancel; a
		// bad initial response surfaces as an internal error before login):
		// Exchange answers all of them with its one generic reply.
		for _, t := range []string{" BAD AUTHENTICATE cancelled\r\n", " BAD Malformed SASL response\r\n",
			" NO [SERVERBUG] Internal server error\r\n"} {
			if i := bytes.Index(line, []byte(" ")); i > 0 && string(line[i:]) == t {
				s.log.Warn("exchange login refused", "protocol", "imap", "reason", "sasl response cancelled or not base64")
				return append(append([]byte(nil), line[:i]...), " NO AUTHENTICATE failed.\r\n"...), true
			}
		}
		return line, true
	}
}

// rewriteConn passes a connection's output through a line rewriter until
// the rewriter says stop; from then on bytes go straight through. Used only
// on plaintext (inside TLS) streams, and only before authentication.
type rewriteConn struct {
	net.Conn
	mu      sync.Mutex
	rewrite func([]byte) ([]byte, bool)
	buf     []byte
	done    bool
}

func (c *rewriteConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	var out []byte
	for !c.done {
		i := bytes.Index(c.buf, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := c.buf[:i+2]
		nl, more := c.rewrite(line)
		out = append(out, nl...)
		c.buf = c.buf[i+2:]
		c.done = !more
	}
	if c.done {
		out = append(out, c.buf...)
		c.buf = nil
	}
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// rewriteListener wraps accepted connections in rewriteConn.
type rewriteListener struct {
	net.Listener
	rewriter func() func([]byte) ([]byte, bool)
}

func (l *rewriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &rewriteConn{Conn: c, rewrite: l.rewriter()}, nil
}
