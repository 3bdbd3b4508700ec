// Package exchange is the Exchange Online half of the emulator: IMAP
// (implicit TLS), POP3 (implicit TLS), SMTP submission (STARTTLS) and
// Microsoft Graph mail over HTTPS, all on 127.0.0.1, sharing one in-memory
// mail store, and accepting only access tokens the emulator's identity
// platform issued (checked with Emulator.Lookup): active, for the Exchange
// resource (Graph: the Graph resource), with the protocol's delegated scope
// or app role, and for app tokens the Exchange service principal and
// FullAccess on the mailbox (reference §5).
//
// Like the core, it is an independent oracle written from
// shared/reference/microsoft-identity.md: it imports none of the client
// packages. Failures look exactly like Exchange's generic replies; the real
// reason is logged (slog, never the token).
//
//	srv, _ := emulator.Start(emulator.ServerOptions{})
//	xs, _ := exchange.Start(srv, exchange.Options{})
//	defer xs.Close()
//	// xs.IMAPAddr, xs.POP3Addr, xs.SMTPAddr, xs.GraphURL
//
// Changes made over IMAP (append, copy, move, expunge, \Seen) in the
// well-known folders are mirrored into the store POP3 and Graph read; see
// README.md for the differences from Exchange that remain.
package exchange

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Options configure the mail servers. Every address must be on 127.0.0.1;
// "" means 127.0.0.1:0 (a free port).
type Options struct {
	IMAPAddr  string // IMAP over implicit TLS (Exchange: 993)
	POP3Addr  string // POP3 over implicit TLS (Exchange: 995)
	SMTPAddr  string // SMTP submission with STARTTLS (Exchange: 587)
	GraphAddr string // Graph over HTTPS
	// PlainIMAPAddr and PlainPOP3Addr start extra plaintext listeners
	// (tests, tools without TLS); "" means none.
	PlainIMAPAddr string
	PlainPOP3Addr string
	// OAuthBearer switches the emulator's oauthbearer setting on at start:
	// IMAP, POP3 and SMTP then advertise and accept OAUTHBEARER too
	// (Gmail-like); Exchange offers XOAUTH2 only. The scenario's
	// [settings] oauthbearer and the admin API flip the same setting.
	OAuthBearer bool
	// Hostname is the server name shown in greetings and replies (default
	// a made-up Exchange front-end name).
	Hostname string
	// Logger receives login failures with their real reason; nil uses the
	// emulator's logger.
	Logger *slog.Logger
}

// Server is the running set of Exchange servers.
type Server struct {
	// Addresses as host:port; PlainIMAPAddr/PlainPOP3Addr are "" unless asked for.
	IMAPAddr, POP3Addr, SMTPAddr, PlainIMAPAddr, PlainPOP3Addr string
	// GraphURL is the Graph base URL including the version, e.g.
	// https://127.0.0.1:41235/v1.0 (use it where clients would use
	// https://graph.microsoft.com/v1.0).
	GraphURL string

	em       *emulator.Emulator
	log      *slog.Logger
	hostname string
	store    *mailStore
	tls      *tls.Config

	mu             sync.Mutex
	outbound       []OutboundMessage
	imapSrv        *imapserver.Server
	smtpSrv        *smtp.Server
	httpSrv        *http.Server
	listeners      []net.Listener
	wg             sync.WaitGroup
	closeOnce      sync.Once
	acceptedConns  map[net.Conn]bool
	closingClients bool

	// uploads holds Graph drafts and their attachment upload sessions
	// (graphupload.go).
	uploads uploadState
}

// OutboundMessage is mail sent to a recipient outside the emulator's
// mailboxes (Exchange would relay it to the internet; the emulator keeps it
// here for tests).
type OutboundMessage struct {
	// From is the envelope sender (MAIL FROM, or the Graph mailbox).
	From string
	// To is the one outside recipient this copy was for.
	To string
	// Raw is the message as submitted (RFC 5322).
	Raw []byte
}

// Start starts the mail and Graph servers for a running emulator, serving
// under its CA, and adds them to srv.Services() as "imap", "pop3", "smtp"
// and "graph".
func Start(srv *emulator.Server, opts Options) (*Server, error) {
	xs, err := StartWith(srv.Emulator, srv.TLSConfig(), opts)
	if err != nil {
		return nil, err
	}
	srv.AddService("imap", "imaps://"+xs.IMAPAddr)
	srv.AddService("pop3", "pop3s://"+xs.POP3Addr)
	srv.AddService("smtp", "smtp://"+xs.SMTPAddr) // submission: STARTTLS, as smtp:// means in mailoauth configs
	// The base without /v1.0: that is what an account's graph key takes, so
	// the printed line can be pasted into a config as it is.
	srv.AddService("graph", strings.TrimSuffix(xs.GraphURL, "/v1.0"))
	if xs.PlainIMAPAddr != "" {
		srv.AddService("imap-plain", "imap://"+xs.PlainIMAPAddr)
	}
	if xs.PlainPOP3Addr != "" {
		srv.AddService("pop3-plain", "pop3://"+xs.PlainPOP3Addr)
	}
	return xs, nil
}

// StartWith starts the servers for emulator e with the given server TLS
// configuration (certificates the clients trust).
func StartWith(e *emulator.Emulator, tlsConfig *tls.Config, opts Options) (*Server, error) {
	if tlsConfig == nil {
		return nil, errors.New("start exchange: a TLS configuration is required")
	}
	s := &Server{em: e, log: opts.Logger, hostname: opts.Hostname, store: newMailStore(), tls: tlsConfig,
		acceptedConns: map[net.Conn]bool{}}
	if s.log == nil {
		s.log = e.Logger()
	}
	if s.hostname == "" {
		s.hostname = "EMU0P01MB0001"
	}
	if opts.OAuthBearer {
		s.SetOAuthBearer(true)
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()
	listen := func(addr string) (net.Listener, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		addr, err := emulator.LoopbackAddr(addr)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		s.listeners = append(s.listeners, ln)
		return ln, nil
	}
	// IMAP.
	s.imapSrv = s.newIMAPServer()
	ln, err := listen(opts.IMAPAddr)
	if err != nil {
		return nil, err
	}
	s.IMAPAddr = ln.Addr().String()
	s.serveIMAP(tls.NewListener(ln, tlsConfig))
	if opts.PlainIMAPAddr != "" {
		ln, err := listen(opts.PlainIMAPAddr)
		if err != nil {
			return nil, err
		}
		s.PlainIMAPAddr = ln.Addr().String()
		s.serveIMAP(ln)
	}
	// POP3.
	ln, err = listen(opts.POP3Addr)
	if err != nil {
		return nil, err
	}
	s.POP3Addr = ln.Addr().String()
	s.servePOP3Listener(tls.NewListener(ln, tlsConfig))
	if opts.PlainPOP3Addr != "" {
		ln, err := listen(opts.PlainPOP3Addr)
		if err != nil {
			return nil, err
		}
		s.PlainPOP3Addr = ln.Addr().String()
		s.servePOP3Listener(ln)
	}
	// SMTP submission: plaintext with STARTTLS; AUTH only after TLS.
	ln, err = listen(opts.SMTPAddr)
	if err != nil {
		return nil, err
	}
	s.SMTPAddr = ln.Addr().String()
	ss := smtp.NewServer(smtpBackend{s})
	ss.Domain = s.hostname + ".outlook.office365.com"
	ss.TLSConfig = tlsConfig
	ss.MaxMessageBytes = maxSMTPMessage
	ss.MaxRecipients = 500
	// RFC 4954 lets an AUTH line with its initial response reach 12288
	// octets; real Microsoft tokens are several KB.
	ss.MaxLineLength = 12288
	ss.ReadTimeout = 10 * time.Minute
	ss.WriteTimeout = time.Minute
	ss.EnableSMTPUTF8 = true
	ss.EnableBINARYMIME = true
	ss.ErrorLog = slogPrintf{s.log}
	s.smtpSrv = ss
	sln := &rewriteListener{Listener: ln, rewriter: s.smtpRewriter}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = ss.Serve(sln) }()
	// Graph.
	ln, err = listen(opts.GraphAddr)
	if err != nil {
		return nil, err
	}
	s.GraphURL = "https://" + ln.Addr().String() + "/v1.0"
	s.httpSrv = &http.Server{Handler: s.GraphHandler(), ReadHeaderTimeout: 10 * time.Second}
	gln := tls.NewListener(ln, tlsConfig)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.httpSrv.Serve(gln) }()
	ok = true
	return s, nil
}

func (s *Server) serveIMAP(ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.imapSrv.Serve(&rewriteListener{Listener: ln, rewriter: s.imapRewriter})
	}()
}

func (s *Server) servePOP3Listener(ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closingClients {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.acceptedConns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					if p := recover(); p != nil {
						s.log.Error("pop3 session panic", "panic", fmt.Sprint(p))
					}
					s.mu.Lock()
					delete(s.acceptedConns, c)
					s.mu.Unlock()
				}()
				s.servePOP3(c)
			}()
		}
	}()
}

// smtpRewriter replaces go-smtp's greeting by Exchange's, then stops.
func (s *Server) smtpRewriter() func([]byte) ([]byte, bool) {
	return func([]byte) ([]byte, bool) {
		return []byte("220 " + s.hostname + ".outlook.office365.com Microsoft ESMTP MAIL Service ready at " +
			s.em.Now().UTC().Format("Mon, 2 Jan 2006 15:04:05 +0000") + "\r\n"), false
	}
}

// Close stops every listener and open connection and waits for them.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.imapSrv != nil {
			_ = s.imapSrv.Close()
		}
		if s.smtpSrv != nil {
			_ = s.smtpSrv.Close()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		for _, ln := range s.listeners {
			_ = ln.Close()
		}
		s.mu.Lock()
		s.closingClients = true
		for c := range s.acceptedConns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// serverID is the bracketed server id of Exchange's IMAP/POP greetings:
// the base64 of the front-end name in UTF-16LE.
func (s *Server) serverID() string {
	name := s.hostname + ".PROD.OUTLOOK.COM"
	u := utf16.Encode([]rune(name))
	b := make([]byte, 0, 2*len(u))
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// OAuthBearer reports whether OAUTHBEARER is offered (the emulator's
// oauthbearer setting).
func (s *Server) OAuthBearer() bool { return s.em.Settings().OAuthBearer }

// SetOAuthBearer switches OAUTHBEARER on or off (Gmail-like tests); it
// changes the emulator's oauthbearer setting.
func (s *Server) SetOAuthBearer(on bool) {
	_ = s.em.UpdateSettings(func(st *emulator.Settings) { st.OAuthBearer = on })
}

// SetGraphThrottle makes every Graph request get 429 with this
// Retry-After (seconds); 0 switches throttling off. It changes the
// emulator's graph_throttle and graph_retry_after settings.
func (s *Server) SetGraphThrottle(retryAfter int) {
	_ = s.em.UpdateSettings(func(st *emulator.Settings) {
		st.GraphThrottle = retryAfter > 0
		if retryAfter > 0 {
			st.GraphRetryAfter = retryAfter
		}
	})
}

// Messages returns the messages of a mailbox's folder (Graph well-known
// name or IMAP name; "" = all), newest first — for tests and the demo.
func (s *Server) Messages(mailbox, folder string) []*Message {
	if folder != "" {
		f, ok := folderByName(folder)
		if !ok {
			return nil
		}
		folder = f.WellKnown
	}
	return s.store.list(mailbox, folder)
}

// Deliver puts a raw message into a mailbox's INBOX, as if it arrived
// from outside (tests, demo seeding).
func (s *Server) Deliver(mailbox string, raw []byte) error {
	if _, ok := s.mailbox(mailbox); !ok {
		return fmt.Errorf("deliver: no mailbox %s", mailbox)
	}
	_, err := s.store.add(mailbox, "inbox", raw, s.em.Now(), false, nil)
	return err
}

// Outbound returns the mail sent to addresses outside the emulator.
func (s *Server) Outbound() []OutboundMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]OutboundMessage(nil), s.outbound...)
}

// deliver puts raw into every local recipient's INBOX (others go to
// Outbound) and, with saveSent, a read copy into the sender's Sent Items.
func (s *Server) deliver(sender string, rcpts []string, bcc []Address, raw []byte, saveSent bool) {
	now := s.em.Now()
	seen := map[string]bool{}
	for _, r := range rcpts {
		key := strings.ToLower(r)
		if seen[key] {
			continue
		}
		seen[key] = true
		if mb, ok := s.mailbox(r); ok {
			if _, err := s.store.add(mb.Address, "inbox", raw, now, false, nil); err != nil {
				s.log.Error("deliver", "to", r, "error", err)
			}
			continue
		}
		s.mu.Lock()
		s.outbound = append(s.outbound, OutboundMessage{From: sender, To: r, Raw: raw})
		s.mu.Unlock()
		s.log.Info("exchange outbound mail kept (not relayed)", "from", sender, "to", r)
	}
	if saveSent {
		if _, err := s.store.add(sender, "sentitems", raw, now, true, bcc); err != nil {
			s.log.Error("save to sent items", "mailbox", sender, "error", err)
		}
	}
}

// slogPrintf adapts slog to the Printf loggers of go-imap and go-smtp.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, v ...any) { p.l.Debug(fmt.Sprintf(format, v...)) }
func (p slogPrintf) Println(v ...any)               { p.l.Debug(fmt.Sprint(v...)) }
