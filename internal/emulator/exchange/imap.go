package exchange

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
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
	selected                   string // IMAP name of the selected folder
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

// Select tracks the selected folder (for mirroring COPY and MOVE).
func (is *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := is.UserSession.Select(name, options)
	if err == nil {
		is.selected = name
	}
	return data, err
}

// Unselect forgets the selected folder.
func (is *imapSession) Unselect() error {
	is.selected = ""
	return is.UserSession.Unselect()
}

// Append stores the message over IMAP and mirrors it into the shared store.
func (is *imapSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxSMTPMessage+1))
	if err != nil {
		return nil, fmt.Errorf("read appended message: %w", err)
	}
	if len(raw) > maxSMTPMessage {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too large."}
	}
	data, err := is.UserSession.Append(mailbox, literal(raw), options)
	if err != nil {
		return nil, err
	}
	t := is.s.em.Now()
	seen := false
	if options != nil {
		if !options.Time.IsZero() {
			t = options.Time
		}
		seen = slices.Contains(options.Flags, imap.FlagSeen)
	}
	is.s.store.mirrorAppend(is.mailbox, mailbox, raw, data.UID, t, seen)
	return data, nil
}

// Copy copies over IMAP and mirrors the copies into the shared store.
func (is *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	data, err := is.UserSession.Copy(numSet, dest)
	if err == nil && data != nil {
		is.s.store.mirrorCopy(is.mailbox, is.selected, dest, uidList(data.SourceUIDs), uidList(data.DestUIDs))
	}
	return data, err
}

// Move moves over IMAP, then mirrors: go-imap's backend reports the UID
// mapping only to the client, so the source UIDs are taken before the move
// and the destination UIDs are the new ones after it (the backend assigns
// them in source order). If another session appended to the destination
// meanwhile the counts differ and the move stays IMAP-only.
func (is *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	var crit imap.SearchCriteria
	switch set := numSet.(type) {
	case imap.SeqSet:
		crit.SeqNum = []imap.SeqSet{set}
	case imap.UIDSet:
		crit.UID = []imap.UIDSet{set}
	}
	var src []imap.UID
	if sd, err := is.UserSession.Search(imapserver.NumKindUID, &crit, &imap.SearchOptions{ReturnAll: true}); err == nil {
		if uids, ok := sd.All.(imap.UIDSet); ok {
			src = uidList(uids)
		}
	}
	before, _ := is.UserSession.Status(dest, &imap.StatusOptions{UIDNext: true})
	if err := is.UserSession.Move(w, numSet, dest); err != nil {
		return err
	}
	if before == nil || len(src) == 0 {
		return nil
	}
	known := is.s.store.knownUIDs(is.mailbox, dest)
	sess := imapmemserver.NewUserSession(is.s.store.imapUser(is.mailbox))
	defer sess.Close()
	if _, err := sess.Select(dest, nil); err != nil {
		return nil
	}
	all, err := searchUIDs(sess, &imap.SearchCriteria{})
	if err != nil {
		return nil
	}
	var dst []imap.UID
	for u := range all {
		if u >= before.UIDNext && !known[u] {
			dst = append(dst, u)
		}
	}
	slices.Sort(dst)
	is.s.store.mirrorCopy(is.mailbox, is.selected, dest, src, dst)
	return nil
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
