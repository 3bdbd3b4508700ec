package mailclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/mailoauth/mailoauth/graph"
	"github.com/mailoauth/mailoauth/internal/pop3"
	"github.com/mailoauth/mailoauth/sasl"
)

// Options are the account-side inputs of a check or a send.
type Options struct {
	// User is the mailbox to log in to: the signed-in user's address, a
	// shared mailbox the user has access to, or the mailbox an app-only
	// token was granted (Exchange app-only access puts it in user=).
	User string
	// Token is the access token for the mail server (for Microsoft, an
	// Exchange Online token, not a Graph one). It is never logged or put in
	// an error.
	Token string
	// Mechanism forces XOAUTH2 or OAUTHBEARER; empty picks from what the
	// server offers (see sasl.Choose).
	Mechanism string
	// TLSConfig is used for TLS and STARTTLS; nil means system roots.
	// ServerName defaults to the URL's host. See TLSConfig.
	TLSConfig *tls.Config
	// Recent asks CheckIMAP and CheckPOP3 for summaries of the newest
	// Recent messages of the inbox (0: none).
	Recent int
	// Logger gets one debug line per step; nil discards.
	Logger *slog.Logger
	// GreetingTimeout bounds the wait for the server to answer at all:
	// connect, TLS handshake, greeting, STARTTLS and capabilities. 0 means
	// DefaultGreetingTimeout. Without it a STARTTLS URL aimed at an
	// implicit-TLS port (imap://host:993) waits forever: each side waits
	// for the other to speak first. Later steps are bounded by ctx only.
	GreetingTimeout time.Duration
}

// DefaultGreetingTimeout is Options.GreetingTimeout's default: servers
// greet within a second or two, and a slow network gets ample margin.
const DefaultGreetingTimeout = 20 * time.Second

// errNoAnswer marks a failure caused by the greeting timeout.
var errNoAnswer = errors.New("the server sent nothing")

// Report is what a check or a send did, step by step, in order. The last
// step is the one that failed, if any.
type Report struct {
	// Server is the URL checked (Graph: the mailbox's URL, …/v1.0/me).
	Server   string   `json:"server"`
	Protocol Protocol `json:"protocol"`
	// User is the mailbox logged in to (the SASL user).
	User string `json:"user"`
	// Mechanism is the SASL mechanism chosen, once one was.
	Mechanism string `json:"mechanism,omitempty"`
	// Steps are in the order they ran; the last failed one ends the check.
	Steps []Step `json:"steps"`
	// Messages are the newest messages, when Options.Recent asked for them.
	Messages []Summary `json:"messages,omitempty"`
}

// Step is one stage of a check: connect, tls, starttls, capabilities,
// authenticate, inbox, stat, mail.
type Step struct {
	// Name is the stage ("connect", "authenticate"…), the same word the
	// text report prints.
	Name string `json:"name"`
	// OK is whether the stage worked.
	OK bool `json:"ok"`
	// Detail says what happened, in plain words.
	Detail string `json:"detail,omitempty"`
	// Reply is the server's reply line for a failure, exactly as sent
	// ("535 5.7.3 Authentication unsuccessful [...]").
	Reply string `json:"reply,omitempty"`
	// Status and Scope are the OAuth error challenge's, when the server
	// sent one (see sasl.AuthError).
	Status string `json:"status,omitempty"`
	Scope  string `json:"scope,omitempty"`
	// Hint says what to do about a failure we recognise.
	Hint string `json:"hint,omitempty"`
	// Error is the failure as Go reports it (never holding the token),
	// for failures without a server reply: a refused connection, a
	// certificate, a mechanism the server lacks.
	Error string `json:"error,omitempty"`
	// Elapsed is how long the stage took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Summary describes one message found by a check.
type Summary struct {
	ID string `json:"id"` // IMAP UID, POP3 UIDL or Graph id
	// Subject, From (as written in the header), Date and MessageID are the
	// message's headers; a missing or unparsable one stays empty.
	Subject   string    `json:"subject"`
	From      string    `json:"from"`
	Date      time.Time `json:"date,omitzero"`
	MessageID string    `json:"message_id,omitempty"`
}

// OK reports whether every step worked.
func (r *Report) OK() bool {
	for _, s := range r.Steps {
		if !s.OK {
			return false
		}
	}
	return len(r.Steps) > 0
}

// String renders one line per step, for people.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s as %s\n", strings.ToUpper(string(r.Protocol)), r.Server, r.User)
	for _, s := range r.Steps {
		mark := "ok  "
		if !s.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-13s %s\n", mark, s.Name, s.Detail)
		if s.Reply != "" {
			fmt.Fprintf(&b, "       server said: %s\n", s.Reply)
		} else if !s.OK && s.Error != "" && s.Status == "" {
			// No reply line to quote (a refused connection, a certificate,
			// a mechanism the server lacks): the error is the only "why".
			fmt.Fprintf(&b, "       error: %s\n", s.Error)
		}
		if s.Status != "" {
			fmt.Fprintf(&b, "       oauth status: %s", s.Status)
			if s.Scope != "" {
				fmt.Fprintf(&b, " (scope %s)", s.Scope)
			}
			b.WriteString("\n")
		}
		if s.Hint != "" {
			fmt.Fprintf(&b, "       hint: %s\n", s.Hint)
		}
	}
	return b.String()
}

// recorder builds a Report and logs each step.
type recorder struct {
	rep   *Report
	srv   Server
	log   *slog.Logger
	start time.Time
	// greeting closes the connection when the server does not answer in
	// time; timedOut says it did.
	greeting        *time.Timer
	greetingTimeout time.Duration
	timedOut        atomic.Bool
	// ctx is the check's or send's context, once connected: when it ends,
	// dial closes the connection, and the failure is reported as such.
	ctx context.Context
}

// armGreeting closes conn unless greeted is called within the greeting
// timeout.
func (r *recorder) armGreeting(conn net.Conn, d time.Duration) {
	if d <= 0 {
		d = DefaultGreetingTimeout
	}
	r.greetingTimeout = d
	r.greeting = time.AfterFunc(d, func() {
		r.timedOut.Store(true)
		conn.Close()
	})
}

// greeted stops the greeting timer: the server answered.
func (r *recorder) greeted() {
	if r.greeting != nil {
		r.greeting.Stop()
	}
}

func newRecorder(srv Server, opts Options) *recorder {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &recorder{
		rep:   &Report{Server: srv.URL(), Protocol: srv.Protocol, User: opts.User},
		srv:   srv,
		log:   log.With("server", srv.URL(), "user", opts.User),
		start: time.Now(),
	}
}

func (r *recorder) ok(name, detail string) {
	r.rep.Steps = append(r.rep.Steps, Step{Name: name, OK: true, Detail: detail, Elapsed: time.Since(r.start)})
	r.log.Debug("mail step ok", "step", name, "detail", detail)
	r.start = time.Now()
}

// fail records a failed step and returns the error for the caller to
// return, wrapped with the step's name.
func (r *recorder) fail(name, detail string, err error) error {
	r.greeted()
	switch {
	case r.timedOut.Load():
		err = fmt.Errorf("%w within %s (%w)", errNoAnswer, r.greetingTimeout, err)
	case r.ctx != nil && r.ctx.Err() != nil && !errors.Is(err, r.ctx.Err()):
		// The connection was closed because ctx ended: say so, not just
		// "use of closed network connection".
		err = fmt.Errorf("%w (%w)", context.Cause(r.ctx), err)
	}
	s := Step{Name: name, Detail: detail, Error: err.Error(), Elapsed: time.Since(r.start)}
	s.Reply = replyOf(err)
	var ae *sasl.AuthError
	if errors.As(err, &ae) {
		s.Status, s.Scope = ae.Status, ae.Scope
	}
	s.Hint = hint(r.rep.Protocol, name, s.Reply, err)
	switch {
	case errors.Is(err, errNoAnswer):
		s.Hint = noAnswerHint(r.srv)
	case errors.Is(err, context.DeadlineExceeded) && s.Hint == "":
		s.Hint = "the server stopped answering before the time limit: try again later, and look at the server's logs if it keeps happening"
	}
	r.rep.Steps = append(r.rep.Steps, s)
	r.log.Debug("mail step failed", "step", name, "reply", s.Reply, "err", err)
	r.start = time.Now()
	return fmt.Errorf("%s %s: %s: %w", r.rep.Protocol, r.rep.Server, name, err)
}

// replyOf returns the server's reply line carried by err, if any.
func replyOf(err error) string {
	var ie *imap.Error
	if errors.As(err, &ie) {
		s := string(ie.Type)
		if ie.Code != "" {
			s += " [" + string(ie.Code) + "]"
		}
		return s + " " + ie.Text
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s := fmt.Sprintf("%03d", se.Code)
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			s += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		return s + " " + se.Message
	}
	var pe *pop3.Error
	if errors.As(err, &pe) {
		return pe.Reply()
	}
	return ""
}

// hint maps known failures to what to do about them. The texts come from
// the protocol reference (Exchange Online, Gmail, Dovecot observations).
func hint(proto Protocol, step, reply string, err error) string {
	lower := strings.ToLower(reply)
	var ae *sasl.AuthError
	isAuthErr := errors.As(err, &ae)
	switch {
	case strings.Contains(lower, "5.7.139") && strings.Contains(lower, "disabled for the mailbox"):
		return "Authenticated SMTP is turned off for this mailbox: an Exchange admin runs " +
			"Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false " +
			"(or Microsoft 365 admin center → Users → Active users → Mail → Manage email apps → Authenticated SMTP)"
	case strings.Contains(lower, "5.7.139") && strings.Contains(lower, "disabled for the tenant"):
		return "Authenticated SMTP is turned off for the whole tenant: an Exchange admin runs " +
			"Set-TransportConfig -SmtpClientAuthenticationDisabled $false, or enables it for this mailbox only with " +
			"Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false (security defaults also turn it off)"
	case strings.Contains(lower, "5.7.139"):
		return "Exchange refused SMTP AUTH by policy (security defaults, conditional access or SMTP AUTH settings); see https://aka.ms/smtp_auth_disabled"
	case strings.Contains(lower, "5.7.30"):
		return "the server wants OAuth, not a password: use XOAUTH2 with an access token"
	case strings.Contains(lower, "5.2.252") || strings.Contains(lower, "sendasdenied"):
		return "the mailbox may not send as this From address: use the mailbox's own address or get Send As permission"
	case strings.Contains(lower, "5.7.3") && strings.HasPrefix(lower, "535"):
		return exchangeTokenHint("SMTP", "https://outlook.office.com/SMTP.Send", "SMTP.SendAsApp")
	case proto == IMAP && strings.Contains(lower, "authenticate failed"):
		return exchangeTokenHint("IMAP", "https://outlook.office.com/IMAP.AccessAsUser.All", "IMAP.AccessAsApp")
	case proto == POP3 && strings.Contains(lower, "unknown user name or bad password"):
		return exchangeTokenHint("POP", "https://outlook.office.com/POP.AccessAsUser.All", "POP.AccessAsApp")
	case strings.Contains(lower, "unavailable") || strings.Contains(lower, "sys/temp") || strings.HasPrefix(lower, "454"):
		return "the server could not check the token right now (its identity provider or introspection endpoint failed); try again later"
	case isAuthErr:
		return "the server rejected the token (OAuth status " + strings.TrimSpace(ae.Status) + "): it is expired, revoked, for another resource " +
			"or another user; get a fresh token for this server's scope and check that the user is the mailbox the token may open"
	}
	var uae x509.UnknownAuthorityError
	var hnErr x509.HostnameError
	var cie x509.CertificateInvalidError
	switch {
	case errors.As(err, &uae):
		return "the server's certificate is signed by an unknown authority: set the account's ca_file to the CA's PEM file"
	case errors.As(err, &hnErr):
		return "the server's certificate does not name this host: use the host name the certificate is for"
	case errors.As(err, &cie):
		return "the server's certificate is not valid (expired or not yet valid): check the server and the local clock"
	case errors.As(err, new(tls.RecordHeaderError)):
		return "this port does not start with TLS (it answered in plain text): use " + string(proto) + ":// for a STARTTLS port, or the protocol's TLS port"
	case errors.Is(err, errNoStartTLS):
		return "the server does not offer STARTTLS, and logging in over plain text would expose the token: use the implicit TLS URL (imaps, pop3s, smtps) if the server has one"
	case errors.Is(err, graph.ErrTooLarge):
		return "Graph takes attachments of at most 150 MB each and a message body of at most 4 MB: share a large file as a link instead"
	case errors.Is(err, sasl.ErrNoMechanism):
		return "the server offers no OAuth mechanism here; OAuth may need to be enabled on the server, or (SMTP) only be offered after STARTTLS"
	}
	var ne net.Error
	if step == "connect" && errors.As(err, &ne) {
		return "could not reach the server: check host, port and firewall"
	}
	return ""
}

func exchangeTokenHint(proto, delegatedScope, appRole string) string {
	return "the server gave no detail. On Exchange Online check: the token is an Exchange Online token, not a Graph one " +
		"(delegated scope " + delegatedScope + ", or https://outlook.office365.com/.default for apps); the user is the mailbox address " +
		"(for a shared mailbox, the signed-in user has FullAccess on it, Add-MailboxPermission); " +
		proto + " is enabled for the mailbox; for app-only tokens the app has " + appRole + " with admin consent, its service principal " +
		"is registered in Exchange (New-ServicePrincipal) and has FullAccess on the mailbox (Add-MailboxPermission)"
}

// Check runs CheckIMAP, CheckPOP3 or CheckSMTP, as srv's protocol says, so
// a caller looping over an account's servers needs no switch.
func Check(ctx context.Context, srv Server, opts Options) (*Report, error) {
	switch srv.Protocol {
	case IMAP:
		return CheckIMAP(ctx, srv, opts)
	case POP3:
		return CheckPOP3(ctx, srv, opts)
	case SMTP:
		return CheckSMTP(ctx, srv, opts)
	}
	return nil, fmt.Errorf("check %s: unknown protocol %q", srv.URL(), srv.Protocol)
}

// noAnswerHint explains a server that said nothing: most often a port that
// wants TLS from the start reached with a STARTTLS or plain URL.
func noAnswerHint(srv Server) string {
	if srv.Security == ImplicitTLS {
		return "the server did not answer: check the host and port, and that this port takes TLS from the start (" + string(srv.Protocol) + "s://); for STARTTLS ports use " + string(srv.Protocol) + "://"
	}
	return fmt.Sprintf("the server did not answer: port %d may expect TLS from the start; try %ss://%s", srv.Port, srv.Protocol, srv.Addr())
}
