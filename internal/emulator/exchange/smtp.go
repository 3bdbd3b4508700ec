package exchange

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// maxSMTPMessage caps a message: Exchange Online advertises SIZE 150 MiB,
// the emulator keeps mail in memory, so it accepts less.
const maxSMTPMessage = 35 << 20

type smtpBackend struct{ s *Server }

// NewSession implements smtp.Backend.
func (b smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{s: b.s, remote: c.Conn().RemoteAddr().String()}, nil
}

// smtpSession is one SMTP submission connection.
type smtpSession struct {
	s      *Server
	remote string
	grant  *Grant
	from   string
	rcpts  []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (ss *smtpSession) err535() error {
	return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3},
		Message: "Authentication unsuccessful [" + ss.s.hostname + ".prod.outlook.com]"}
}

// AuthMechanisms is advertised after STARTTLS only (go-smtp hides AUTH on
// plaintext): "AUTH LOGIN XOAUTH2", like Exchange.
func (ss *smtpSession) AuthMechanisms() []string {
	if ss.s.OAuthBearer() {
		return []string{"LOGIN", "XOAUTH2", "OAUTHBEARER"}
	}
	return []string{"LOGIN", "XOAUTH2"}
}

// Auth starts a SASL exchange. Success is reported through an SMTPError
// carrying 235: go-smtp hard-codes "235 2.0.0 Authentication succeeded",
// and clients and tests compare Exchange's "235 2.7.0 Authentication
// successful". The session tracks its own authenticated state.
func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	if ss.grant != nil {
		return nil, &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Already authenticated"}
	}
	switch {
	case mech == "LOGIN":
		return &loginServer{ss: ss}, nil
	case mech == "XOAUTH2" || (mech == "OAUTHBEARER" && ss.s.OAuthBearer()):
	default:
		return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 7, 4}, Message: "Unrecognized authentication type"}
	}
	return &saslServer{s: ss.s, proto: SMTP, mech: mech, failure: ss.err535(), remote: ss.remote,
		onFailure: func(f *authFailure) error {
			if f.smtpDisabled != "" {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 139},
					Message: "Authentication unsuccessful, SmtpClientAuthentication is disabled for the " + f.smtpDisabled +
						". Visit https://aka.ms/smtp_auth_disabled for more information."}
			}
			return ss.err535()
		},
		onSuccess: func(g Grant) error {
			ss.grant = &g
			return &smtp.SMTPError{Code: 235, EnhancedCode: smtp.EnhancedCode{2, 7, 0}, Message: "Authentication successful"}
		}}, nil
}

// loginServer is AUTH LOGIN: it asks for the user name and password, then
// refuses, as Exchange Online does since basic auth for client submission
// was retired (reference §5.2). Written here because go-sasl has no LOGIN
// server, and this one only has to refuse.
type loginServer struct {
	ss   *smtpSession
	step int
	user string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	}
	l.ss.s.log.Warn("exchange login refused", "protocol", "smtp", "mechanism", "LOGIN", "user", l.user,
		"remote", l.ss.remote, "reason", "basic authentication is disabled")
	return nil, true, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 30},
		Message: "Basic authentication is not supported for Client Submission."}
}

// Mail implements smtp.Session.
func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.grant == nil {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57},
			Message: "Client not authenticated to send mail. [" + ss.s.hostname + ".prod.outlook.com]"}
	}
	ss.from = from
	return nil
}

// Rcpt implements smtp.Session.
func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.grant == nil {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 57},
			Message: "Client not authenticated to send mail. [" + ss.s.hostname + ".prod.outlook.com]"}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// Data checks SendAs (envelope and From header) and delivers.
func (ss *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	senders := []string{ss.from}
	if h, err := mail.CreateReader(bytes.NewReader(raw)); err == nil || h != nil {
		if from, err := h.Header.AddressList("From"); err == nil {
			for _, a := range from {
				senders = append(senders, a.Address)
			}
		}
	}
	for _, addr := range senders {
		if addr == "" || ss.s.maySendAs(*ss.grant, addr) {
			continue
		}
		ss.s.log.Warn("exchange send refused", "protocol", "smtp", "identity", ss.grant.Identity,
			"mailbox", ss.grant.Mailbox, "from", addr, "reason", "no SendAs permission")
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 2, 252}, Message: fmt.Sprintf(
			"SendAsDenied; %s not allowed to send as %s; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "+
				"Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.[EndDiagnosticData]",
			ss.grant.Mailbox, addr)}
	}
	now := ss.s.em.Now()
	if !bytes.Contains(bytes.ToLower(headerOf(raw)), []byte("\nmessage-id:")) {
		raw = append([]byte(fmt.Sprintf("Message-ID: <%s@%s.prod.outlook.com>\r\n", newRequestID(), ss.s.hostname)), raw...)
	}
	received := fmt.Sprintf("Received: from emulator (%s) by %s.prod.outlook.com with Microsoft SMTP Server; %s\r\n",
		ss.remote, ss.s.hostname, now.UTC().Format(time.RFC1123Z))
	ss.s.deliver(ss.grant.Mailbox, ss.rcpts, nil, append([]byte(received), raw...), true)
	return nil
}

// headerOf returns the header block of raw (up to the first empty line).
func headerOf(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return append([]byte("\n"), raw[:i]...)
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return append([]byte("\n"), raw[:i]...)
	}
	return append([]byte("\n"), raw...)
}

// Reset implements smtp.Session.
func (ss *smtpSession) Reset() { ss.from, ss.rcpts = "", nil }

// Logout implements smtp.Session.
func (ss *smtpSession) Logout() error { return nil }

// maySendAs reports whether the grant may put addr in From: its own
// mailbox, the signed-in user's own address, or a mailbox the user has
// SendAs on.
func (s *Server) maySendAs(g Grant, addr string) bool {
	if strings.EqualFold(addr, g.Mailbox) || (!g.AppOnly && strings.EqualFold(addr, g.Identity)) {
		return true
	}
	if g.AppOnly {
		return false
	}
	mb, ok := s.mailbox(addr)
	return ok && mb.canSendAs(g.Identity)
}
