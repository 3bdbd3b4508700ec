// Package proxy is the local IMAP, POP3 and SMTP proxy for mail clients that
// can only send a user name and a password: it takes their login on a
// loopback port, checks the password against the hash the user set with
// `mailoauth proxy passwd`, logs in to the real server with an OAuth token
// (XOAUTH2 or OAUTHBEARER) and from then on copies bytes both ways.
//
// Before login each protocol has a small hand-written state machine
// (imap.go, pop3.go, smtp.go) over bounded line reads. go-imap's wire parser
// is internal to that module and a semantic imapserver↔imapclient bridge
// would drop every extension it does not model, so, like
// simonrob/email-oauth2-proxy, the proxy only understands the handful of
// commands a client sends before login and relays everything after it with
// io.Copy (splice(2) when both sides are plain TCP).
//
// One Server serves one listener ([proxy.imap], [proxy.pop3] or
// [proxy.smtp]); tokens come through a TokenFunc so the package needs no
// token store and tests can hand it tokens minted for a real Dovecot.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailoauth/mailoauth/mailclient"
)

// TokenFunc returns a fresh access token for an account's mailbox on
// protocol ("imap", "pop3" or "smtp"). It is how the proxy reaches the token
// layer (internal/account in the CLI) without depending on it.
type TokenFunc func(ctx context.Context, account, protocol string) (string, error)

// Verifier checks a local password for an account. Verify returns nil when
// the password is right, ErrBadPassword when it is wrong (ErrNoPassword,
// which matches it, when the account has none set), and another error when
// it could not check.
type Verifier interface {
	Verify(account, password string) error
}

// Account is one account that may log in through a listener.
type Account struct {
	Name  string // the config's account name (what TokenFunc gets)
	Email string // the local user name, and the SASL user upstream
	// Upstream is the real server: implicit TLS, STARTTLS (required), or
	// plain text to loopback only (mailclient.ParseURL enforces that).
	Upstream mailclient.Server
	// UpstreamTLS verifies the upstream certificate; nil = system roots.
	// ServerName is filled in from Upstream.Host when empty.
	UpstreamTLS *tls.Config
	// Mechanism forces XOAUTH2 or OAUTHBEARER; "" picks from what the
	// server offers (sasl.Choose).
	Mechanism string
}

// Local TLS modes, as the config names them.
const (
	TLSNone     = "none"
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
)

// Config configures a Server.
type Config struct {
	// Protocol is "imap", "pop3" or "smtp".
	Protocol string
	// Accounts are the accounts allowed on this listener.
	Accounts []Account
	// TLS is the local side: TLSNone, TLSStartTLS or TLSImplicit; the
	// last two need TLSConfig (with a certificate).
	TLS       string
	TLSConfig *tls.Config
	// MaxConnections caps concurrent client connections (0 = 16384);
	// MaxConnectionsPerAccount caps logged-in sessions per account (0 =
	// no cap).
	MaxConnections           int
	MaxConnectionsPerAccount int
	// IdleTimeout closes a client that sends nothing for this long before
	// logging in (0 = 30 minutes). After login the upstream server's own
	// timeouts apply: the proxy relays, it does not judge idleness.
	IdleTimeout time.Duration
	// UpstreamTimeout bounds connecting and logging in upstream, so a
	// client never waits longer than this for an answer (0 = 20 s).
	UpstreamTimeout time.Duration
	// MaxLine and MaxLiteral cap pre-login input (0 = DefaultMaxLine,
	// DefaultMaxLiteral).
	MaxLine, MaxLiteral int

	// Token gets the upstream access token. Required.
	Token TokenFunc
	// Passwords checks local passwords. Required.
	Passwords Verifier
	// Rejected, when set, is told when the upstream server refused a
	// token (an OAuth error challenge or a failed AUTH after one), with
	// the refused token, so the token layer can drop it and refresh on the
	// next login (internal/account's Invalidate) or mark the account. The
	// client hears its failure once Rejected returns, so its next login
	// finds the token dropped; keep it short (the login's context bounds
	// it).
	Rejected func(ctx context.Context, account, token string, err error)
	// Delay waits d before answering a failed login (the growing delay per
	// client address and user). nil waits on a timer; tests record.
	Delay func(ctx context.Context, d time.Duration) error
	// Now is the clock of the login penalty; nil = time.Now.
	Now func() time.Time
	// Hostname is the name in greetings and the EHLO sent upstream
	// (default "localhost").
	Hostname string
	// Logger gets one line per login and per refused login, never a
	// password or token; nil = slog.Default().
	Logger *slog.Logger
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server is one proxy listener's sessions.
type Server struct {
	cfg     Config
	log     *slog.Logger
	byEmail map[string]*Account
	pen     *penalty
	caps    capCache

	slots chan struct{} // one per open client connection

	mu        sync.Mutex
	lns       map[net.Listener]struct{}
	conns     map[*session]struct{}
	perAcct   map[string]int
	closed    bool
	sessions  sync.WaitGroup
	closeOnce sync.Once
	done      chan struct{}
	ctx       context.Context // ends at Shutdown/Close: stops delays and upstream logins
	cancel    context.CancelFunc
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	switch cfg.Protocol {
	case "imap", "pop3", "smtp":
	default:
		return nil, fmt.Errorf("proxy: unknown protocol %q", cfg.Protocol)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSNone
	case TLSNone:
	case TLSStartTLS, TLSImplicit:
		if cfg.TLSConfig == nil || (len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil) {
			return nil, fmt.Errorf("proxy: tls %q needs a certificate", cfg.TLS)
		}
	default:
		return nil, fmt.Errorf("proxy: unknown tls mode %q", cfg.TLS)
	}
	if cfg.Token == nil || cfg.Passwords == nil {
		return nil, errors.New("proxy: Token and Passwords are required")
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 16384
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 20 * time.Second
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	if cfg.MaxLiteral <= 0 {
		cfg.MaxLiteral = DefaultMaxLiteral
	}
	if cfg.Delay == nil {
		cfg.Delay = sleepCtx
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		byEmail: map[string]*Account{},
		pen:     newPenalty(cfg.Now),
		slots:   make(chan struct{}, cfg.MaxConnections),
		lns:     map[net.Listener]struct{}{},
		conns:   map[*session]struct{}{},
		perAcct: map[string]int{},
		done:    make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("proxy", cfg.Protocol)
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if a.Email == "" || a.Name == "" {
			return nil, fmt.Errorf("proxy: account %q needs a name and an email", a.Name)
		}
		if a.Upstream.Protocol != mailclient.Protocol(cfg.Protocol) {
			return nil, fmt.Errorf("proxy: account %s: upstream %s is not %s", a.Name, a.Upstream, cfg.Protocol)
		}
		s.byEmail[strings.ToLower(a.Email)] = a
	}
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then (or the accept error that stopped it).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of descriptors or a transient error: back off
				// rather than spin, like net/http.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		backoff = 0
		select {
		case s.slots <- struct{}{}:
		default:
			s.refuseBusy(c)
			continue
		}
		ss := s.newSession(c)
		if ss == nil {
			<-s.slots
			continue
		}
		go func() {
			defer s.sessions.Done()
			defer func() { <-s.slots }()
			defer s.forget(ss)
			ss.run()
		}()
	}
}

// refuseBusy answers a connection over MaxConnections with the protocol's
// "too busy" line and closes it, without waiting on the client.
func (s *Server) refuseBusy(c net.Conn) {
	s.log.Warn("connection refused: too many connections", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConnections)
	if s.cfg.TLS != TLSImplicit {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		switch s.cfg.Protocol {
		case "imap":
			io.WriteString(c, "* BYE Too many connections, try again later\r\n")
		case "pop3":
			io.WriteString(c, "-ERR [SYS/TEMP] Too many connections, try again later\r\n")
		case "smtp":
			io.WriteString(c, "421 4.3.2 Too many connections, try again later\r\n")
		}
	}
	c.Close()
}

// newSession registers a session, or returns nil when the server is
// closing.
func (s *Server) newSession(c net.Conn) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil
	}
	ss := &session{s: s, conn: c, remote: remoteIP(c)}
	s.conns[ss] = struct{}{}
	s.sessions.Add(1)
	return ss
}

func (s *Server) forget(ss *session) {
	s.mu.Lock()
	delete(s.conns, ss)
	s.mu.Unlock()
}

// Shutdown stops accepting, lets sessions finish until ctx ends, then closes
// the rest. It returns an error matching ctx's when it had to cut logged-in
// sessions (saying how many), nil when none was left to cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	// Sessions still before login hold no state worth waiting for.
	s.mu.Lock()
	for ss := range s.conns {
		ss.closeIfIdle()
	}
	s.mu.Unlock()
	waited := make(chan struct{})
	go func() { s.sessions.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		cut := s.closeAll()
		<-waited
		if cut == 0 {
			return nil
		}
		return fmt.Errorf("proxy: %d logged-in sessions cut: %w", cut, ctx.Err())
	}
}

// Close closes the listeners and every session at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.closeAll()
	s.sessions.Wait()
	return nil
}

func (s *Server) stopAccepting() {
	s.closeOnce.Do(func() { close(s.done); s.cancel() })
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
}

// closeAll closes every session and returns how many were logged in.
func (s *Server) closeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := 0
	for ss := range s.conns {
		if ss.closeNow() {
			cut++
		}
	}
	return cut
}

// acquireAccount counts a logged-in session of acct against
// MaxConnectionsPerAccount.
func (s *Server) acquireAccount(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.cfg.MaxConnectionsPerAccount; n > 0 && s.perAcct[name] >= n {
		return false
	}
	s.perAcct[name]++
	return true
}

func (s *Server) releaseAccount(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[name]--; s.perAcct[name] <= 0 {
		delete(s.perAcct, name)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
