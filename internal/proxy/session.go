package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// session is one client connection.
type session struct {
	s      *Server
	remote string // client IP, the penalty key's first half

	mu       sync.Mutex
	conn     net.Conn // the client (a *tls.Conn after STARTTLS)
	up       net.Conn // upstream, once dialled
	relaying bool     // logged in: Shutdown waits for it
	closing  bool

	r      *bufio.Reader
	tls    bool // the client side is encrypted
	errors int  // bad commands so far, before login
	next   *relayTo
}

// relayTo is a finished login: the protocol handler returns and run starts
// the relay, so nothing of the pre-login state (readers, parsers) stays
// reachable for the rest of a long session.
type relayTo struct {
	acct *Account
	u    *upConn
}

// maxErrors is how many bad commands a client may send before login
// before it is disconnected (pipelined garbage ends quickly).
const maxErrors = 10

func (ss *session) run() {
	defer ss.closeNow()
	c := ss.conn
	if ss.s.cfg.TLS == TLSImplicit {
		if !ss.handshake() {
			return
		}
	} else {
		ss.r = bufio.NewReaderSize(c, 4096)
	}
	switch ss.s.cfg.Protocol {
	case "imap":
		ss.imap()
	case "pop3":
		ss.pop3()
	case "smtp":
		ss.smtp()
	}
	if n := ss.next; n != nil {
		ss.next = nil
		ss.relay(n.acct, n.u)
	}
}

// handshake runs the server side of TLS on the client connection (implicit
// TLS, or after STARTTLS/STLS) within the idle timeout.
func (ss *session) handshake() bool {
	tc := tls.Server(ss.conn, ss.s.cfg.TLSConfig)
	ctx, cancel := context.WithTimeout(context.Background(), min(ss.s.cfg.IdleTimeout, time.Minute))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		ss.s.log.Info("client TLS handshake failed", "remote", ss.remote, "err", err)
		return false
	}
	ss.mu.Lock()
	ss.conn = tc
	ss.mu.Unlock()
	ss.r = bufio.NewReaderSize(tc, 4096)
	ss.tls = true
	return true
}

// startTLS upgrades after the protocol's "go ahead" line. Bytes the client
// pipelined after the STARTTLS command would be taken as sent over TLS
// (the CVE-2011-0411 injection), so a client that sent any is dropped.
func (ss *session) startTLS() bool {
	if ss.r.Buffered() > 0 {
		ss.s.log.Warn("client sent data after STARTTLS; closing", "remote", ss.remote)
		return false
	}
	return ss.handshake()
}

// readLine reads a pre-login line within the idle timeout.
func (ss *session) readLine() (string, error) {
	ss.conn.SetReadDeadline(time.Now().Add(ss.s.cfg.IdleTimeout))
	return readLine(ss.r, ss.s.cfg.MaxLine)
}

// saslResponse sends a SASL challenge line (cont, CRLF-terminated) and
// reads the client's answer, handling the two answers every protocol
// treats alike: an over-long line (tooLong is sent and err ends the
// session) and "*", the client cancelling (RFC 4422 §3.4: cancelled is
// sent, ok is false and the session goes on when err is nil).
func (ss *session) saslResponse(cont, tooLong, cancelled string) (resp string, ok bool, err error) {
	if err := ss.write(cont); err != nil {
		return "", false, err
	}
	resp, err = ss.readLine()
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			ss.write(tooLong)
		}
		return "", false, err
	}
	if resp == "*" {
		return "", false, ss.write(cancelled)
	}
	return resp, true, nil
}

// write sends lines (each already CRLF-terminated) to the client.
func (ss *session) write(lines ...string) error {
	ss.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	var err error
	if len(lines) == 1 {
		_, err = io.WriteString(ss.conn, lines[0])
	} else {
		_, err = io.WriteString(ss.conn, strings.Join(lines, ""))
	}
	return err
}

// closeIfIdle closes a session that has not logged in (Shutdown).
func (ss *session) closeIfIdle() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.relaying {
		ss.closing = true
		ss.conn.Close()
		if ss.up != nil {
			ss.up.Close()
		}
	}
}

// closeNow closes the session and says whether it was logged in (and not
// already closing).
func (ss *session) closeNow() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	was := ss.relaying && !ss.closing
	ss.closing = true
	ss.conn.Close()
	if ss.up != nil {
		ss.up.Close()
	}
	return was
}

// needsTLS says whether a login must wait for STARTTLS (tls = "starttls"
// and the client has not upgraded yet), and logs the refusal: the client
// only hears a protocol error, which mail programs often show as a wrong
// password, so the log has to say what is really missing.
func (ss *session) needsTLS() bool {
	if ss.s.cfg.TLS != TLSStartTLS || ss.tls {
		return false
	}
	ss.s.log.Warn("login refused: the client did not run STARTTLS first (set its connection security to STARTTLS)", "remote", ss.remote)
	return true
}

// loginError is why a local login failed, in words the protocol handlers
// turn into their own failure lines.
type loginError int

const (
	loginBadPassword loginError = iota + 1 // wrong user or password
	loginTooMany                           // MaxConnectionsPerAccount reached
	loginNoToken                           // the token layer had no token
	loginUnreachable                       // upstream connection or TLS failed
	loginRefused                           // upstream refused the token
	loginUpstream                          // any other upstream login failure
)

func (e loginError) Error() string {
	switch e {
	case loginBadPassword:
		return "authentication failed"
	case loginTooMany:
		return "too many connections for this account"
	case loginNoToken:
		return "the proxy has no token for this account"
	case loginUnreachable:
		return "the proxy could not connect to the mail server"
	case loginRefused:
		return "the mail server refused the account's token"
	default:
		return "the proxy could not log in to the mail server"
	}
}

// upstreamFailure is the text a client sees when the upstream half of its
// login failed: it names which half (no token, no connection, a refusal),
// because a mail program shows it to the user, and points to the log,
// which has the details.
func upstreamFailure(err error) string {
	le := loginUpstream
	errors.As(err, &le)
	msg := le.Error()
	return strings.ToUpper(msg[:1]) + msg[1:] + "; see the proxy's log"
}

// checkPassword runs the local half of a login: the account by email, the
// password in constant time, and the growing delay on failure. It never
// touches tokens.
func (ss *session) checkPassword(user, password string) (*Account, error) {
	key := ss.remote + "\x00" + strings.ToLower(user)
	acct := ss.s.byEmail[strings.ToLower(user)]
	name := "\x00none" // no account: still pay for a hash, so timing says nothing
	if acct != nil {
		name = acct.Name
	}
	err := ss.s.cfg.Passwords.Verify(name, password)
	if err == nil && acct != nil {
		ss.s.pen.ok(key)
		return acct, nil
	}
	reason := "wrong password"
	switch {
	case acct == nil:
		reason = "unknown user"
	case errors.Is(err, ErrNoPassword):
		reason = "no proxy password set for the account: run mailoauth proxy passwd " + acct.Name
	case !errors.Is(err, ErrBadPassword):
		reason = "password check failed: " + err.Error()
	}
	d := ss.s.pen.fail(key)
	ss.s.log.Warn("local login refused", "remote", ss.remote, "user", user, "reason", reason, "delay", d)
	ctx, cancel := context.WithTimeout(ss.s.ctx, d+time.Second)
	defer cancel()
	if err := ss.s.cfg.Delay(ctx, d); err != nil {
		return nil, err
	}
	return nil, loginBadPassword
}

// upstreamLogin dials acct's server and logs in with a token, within
// UpstreamTimeout. On success the session owns the upstream connection and
// a per-account slot.
func (ss *session) upstreamLogin(acct *Account, login func(u *upConn, ctx context.Context, token string) (string, error)) (string, *upConn, error) {
	if !ss.s.acquireAccount(acct.Name) {
		ss.s.log.Warn("login refused: too many connections for the account", "remote", ss.remote, "account", acct.Name)
		return "", nil, loginTooMany
	}
	ctx, cancel := context.WithTimeout(ss.s.ctx, ss.s.cfg.UpstreamTimeout)
	defer cancel()
	tok, err := ss.s.cfg.Token(ctx, acct.Name, ss.s.cfg.Protocol)
	if err != nil {
		ss.s.releaseAccount(acct.Name)
		ss.s.log.Error("no token for the account", "account", acct.Name, "err", err)
		return "", nil, loginNoToken
	}
	u, err := dialUpstream(ctx, acct)
	if err != nil {
		ss.s.releaseAccount(acct.Name)
		ss.s.log.Error("upstream connection failed", "account", acct.Name, "upstream", acct.Upstream.String(), "err", err)
		return "", nil, loginUnreachable
	}
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		u.conn.Close()
		ss.s.releaseAccount(acct.Name)
		return "", nil, loginUpstream
	}
	ss.up = u.conn
	ss.mu.Unlock()
	stop2 := context.AfterFunc(ctx, func() { u.conn.Close() })
	final, err := login(u, ctx, tok)
	stop2()
	if err == nil {
		// From here the session counts as logged in: Shutdown lets it
		// finish rather than closing it as idle.
		ss.mu.Lock()
		closing := ss.closing
		ss.relaying = !closing
		ss.mu.Unlock()
		if closing {
			u.conn.Close()
			ss.s.releaseAccount(acct.Name)
			return "", nil, loginUpstream
		}
		u.conn.SetDeadline(time.Time{})
		ss.s.caps.put(acct.Upstream.Addr(), u.preCaps)
		ss.s.log.Info("logged in", "remote", ss.remote, "account", acct.Name, "upstream", acct.Upstream.String(), "mechanism", u.mech)
		return final, u, nil
	}
	ss.mu.Lock()
	ss.up = nil
	ss.mu.Unlock()
	u.conn.Close()
	ss.s.releaseAccount(acct.Name)
	var rej *rejectedError
	if errors.As(err, &rej) {
		// The login's context may be spent; the hook gets a few seconds of
		// its own, still ended by Shutdown.
		hctx, hcancel := context.WithTimeout(ss.s.ctx, 5*time.Second)
		defer hcancel()
		ss.s.log.Error("upstream refused the token", "account", acct.Name, "upstream", acct.Upstream.String(), "err", rej.err)
		if ss.s.cfg.Rejected != nil {
			ss.s.cfg.Rejected(hctx, acct.Name, tok, rej.err)
		}
		return "", nil, loginRefused
	}
	ss.s.log.Error("upstream login failed", "account", acct.Name, "upstream", acct.Upstream.String(), "err", err)
	return "", nil, loginUpstream
}

// relay copies bytes both ways until either side is done, first passing on
// what each buffered reader already holds (pipelined commands, the server's
// first lines after login). The upstream ending closes the client (its
// BYE or close reaches the client as is); the client ending half-closes
// upstream and gives it a little while to finish.
func (ss *session) relay(acct *Account, u *upConn) {
	defer ss.s.releaseAccount(acct.Name)
	ss.mu.Lock()
	closing := ss.closing
	ss.mu.Unlock()
	if closing {
		return
	}
	client := ss.conn
	client.SetDeadline(time.Time{})
	if n := ss.r.Buffered(); n > 0 {
		b, _ := ss.r.Peek(n)
		if _, err := u.conn.Write(b); err != nil {
			return
		}
	}
	if n := u.r.Buffered(); n > 0 {
		b, _ := u.r.Peek(n)
		if _, err := client.Write(b); err != nil {
			return
		}
	}
	ss.r, u.r = nil, nil // let the buffers go: the relay reads the conns directly
	var wg sync.WaitGroup
	upDone := make(chan struct{})
	wg.Go(func() {
		copyConn(client, u.conn)
		close(upDone)
		client.Close()
	})
	copyConn(u.conn, client)
	closeWrite(u.conn)
	select {
	case <-upDone:
	case <-time.After(30 * time.Second):
	case <-ss.s.done:
	}
	u.conn.Close()
	wg.Wait()
}

// Relay buffers when TLS is on either side. A session waits in Read most
// of its life, and whatever buffer it waits with stays allocated, so it
// waits with a small one (relaySmall, enough for the short lines of an
// interactive or IDLE session) and borrows a full-size one (relayBufSize,
// one TLS record's plaintext) from a pool once a read fills the small one,
// giving it back after a read the small one would have held. A fixed
// 16 KiB buffer per direction (or io.Copy's 32 KiB) would cost 32-64 KiB
// per idle session.
//
// "Would have held", not "did not fill the big one": a tls.Conn read
// returns at most the rest of one record, so after the small read took
// the first 2 KiB of a record the next read is 14 KiB. Giving the big
// buffer back then made every record of a bulk FETCH two reads and two
// writes (2 + 14 KiB).
const (
	relayBufSize = 16 << 10
	relaySmall   = 2 << 10
)

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// copyConn copies src to dst: with io.Copy (splice(2) on Linux, no user
// buffer) when both are plain TCP, else with copyBuffered.
func copyConn(dst, src net.Conn) {
	_, tcpDst := dst.(*net.TCPConn)
	_, tcpSrc := src.(*net.TCPConn)
	if tcpDst && tcpSrc {
		io.Copy(dst, src)
		return
	}
	copyBuffered(dst, src)
}

// copyBuffered copies src to dst until either fails, reading into a small
// buffer while reads come back short and into a pooled full-size one while
// a transfer is under way (see relaySmall). Every read's bytes are written before the
// next read, so nothing waits in a buffer for more input.
func copyBuffered(dst io.Writer, src io.Reader) {
	small := make([]byte, relaySmall)
	var big *[]byte
	defer func() {
		if big != nil {
			relayBufs.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = *big
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		switch {
		case big == nil && n == len(small):
			big = relayBufs.Get().(*[]byte)
		case big != nil && n < len(small):
			relayBufs.Put(big)
			big = nil
		}
	}
}

func closeWrite(c net.Conn) {
	switch c := c.(type) {
	case *tls.Conn:
		c.CloseWrite()
	case interface{ CloseWrite() error }:
		c.CloseWrite()
	default:
		c.Close()
	}
}

// rejectedError is an upstream refusal of the token itself (as opposed to
// a network failure), which the token layer should hear about.
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return fmt.Sprintf("token refused: %v", e.err) }
func (e *rejectedError) Unwrap() error { return e.err }
