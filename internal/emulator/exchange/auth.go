package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Protocol is one of the mail protocols whose token checks differ only in
// the scope and app role they require (reference §4.1, §4.3).
type Protocol int

// Mail protocols the emulator serves.
const (
	IMAP Protocol = iota
	POP3
	SMTP
)

// String names the protocol in logs ("imap", "pop3", "smtp").
func (p Protocol) String() string {
	return [...]string{"imap", "pop3", "smtp"}[p]
}

// scope is the delegated Exchange permission the protocol needs.
func (p Protocol) scope() string {
	return [...]string{"IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send"}[p]
}

// role is the Exchange application permission the protocol needs.
func (p Protocol) role() string {
	return [...]string{"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"}[p]
}

// Grant is what a successful XOAUTH2/OAUTHBEARER login gives a session.
type Grant struct {
	Mailbox  string // canonical address of the mailbox opened (user= value)
	Identity string // the signed-in user's UPN, or the app's client id
	AppOnly  bool
	ClientID string
	TenantID string
}

// authFailure is the real reason a login failed. Exchange shows clients
// only a generic reply; the emulator logs this reason so that tests and
// users can see what was wrong. It never contains the token.
type authFailure struct {
	reason string
	// smtpDisabled is "Tenant" or "Mailbox" when the token was good but SMTP
	// AUTH is switched off (535 5.7.139 instead of 535 5.7.3).
	smtpDisabled string
}

func (f *authFailure) Error() string { return f.reason }

func fail(format string, args ...any) *authFailure {
	return &authFailure{reason: fmt.Sprintf(format, args...)}
}

// errMalformed reports an initial client response that is not a valid
// SASL message of the mechanism.
var errMalformed = errors.New("malformed sasl message")

// ParseXOAUTH2 decodes the (already base64-decoded) XOAUTH2 initial client
// response "user=" mailbox ^A "auth=Bearer " token ^A ^A (reference §5.2).
// Written by hand: go-sasl dropped XOAUTH2, and the emulator must check the
// exact framing to catch client bugs. The token type is matched
// case-insensitively, everything else exactly.
func ParseXOAUTH2(b []byte) (user, token string, err error) {
	if !bytes.HasSuffix(b, []byte("\x01\x01")) {
		return "", "", fmt.Errorf("%w: xoauth2 message does not end with ^A^A", errMalformed)
	}
	fields := bytes.Split(b[:len(b)-2], []byte{0x01})
	if len(fields) != 2 {
		return "", "", fmt.Errorf("%w: xoauth2 message needs exactly user= and auth= fields", errMalformed)
	}
	u, ok := bytes.CutPrefix(fields[0], []byte("user="))
	if !ok || len(u) == 0 {
		return "", "", fmt.Errorf("%w: xoauth2 message lacks user=", errMalformed)
	}
	a, ok := bytes.CutPrefix(fields[1], []byte("auth="))
	if !ok || len(a) < len("bearer ") || !strings.EqualFold(string(a[:7]), "bearer ") {
		return "", "", fmt.Errorf("%w: xoauth2 message lacks auth=Bearer", errMalformed)
	}
	tok := a[7:]
	if len(tok) == 0 || bytes.ContainsAny(tok, " \t") {
		return "", "", fmt.Errorf("%w: xoauth2 bearer token is empty or has spaces", errMalformed)
	}
	return string(u), string(tok), nil
}

// OAuthBearer is a decoded OAUTHBEARER initial client response (RFC 7628).
type OAuthBearer struct {
	User  string // a= of the GS2 header
	Host  string
	Port  int
	Token string
}

// ParseOAuthBearer decodes the OAUTHBEARER initial client response
// "n,a=user," ^A "host=h" ^A "port=p" ^A "auth=Bearer t" ^A ^A. Written by
// hand: go-sasl's server side panics on an empty response after a failure,
// which would let any client crash a connection handler.
func ParseOAuthBearer(b []byte) (OAuthBearer, error) {
	var out OAuthBearer
	gs2, rest, ok := bytes.Cut(b, []byte{0x01})
	if !ok || !bytes.HasSuffix(rest, []byte("\x01\x01")) {
		return out, fmt.Errorf("%w: oauthbearer message framing", errMalformed)
	}
	parts := bytes.Split(gs2, []byte{','})
	if len(parts) != 3 || string(parts[0]) != "n" || len(parts[2]) != 0 {
		return out, fmt.Errorf("%w: oauthbearer gs2 header", errMalformed)
	}
	if len(parts[1]) > 0 {
		a, ok := bytes.CutPrefix(parts[1], []byte("a="))
		if !ok {
			return out, fmt.Errorf("%w: oauthbearer authzid", errMalformed)
		}
		out.User = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(string(a))
	}
	for _, kv := range bytes.Split(rest[:len(rest)-2], []byte{0x01}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok {
			return out, fmt.Errorf("%w: oauthbearer key-value", errMalformed)
		}
		switch string(k) {
		case "host":
			out.Host = string(v)
		case "port":
			p, err := strconv.ParseUint(string(v), 10, 16)
			if err != nil {
				return out, fmt.Errorf("%w: oauthbearer port", errMalformed)
			}
			out.Port = int(p)
		case "auth":
			if len(v) <= 7 || !strings.EqualFold(string(v[:7]), "bearer ") {
				return out, fmt.Errorf("%w: oauthbearer auth is not a bearer token", errMalformed)
			}
			out.Token = string(v[7:])
		}
	}
	if out.Token == "" {
		return out, fmt.Errorf("%w: oauthbearer auth missing", errMalformed)
	}
	return out, nil
}

// authorize checks a bearer token presented with user= for protocol p,
// like Exchange Online: issued by this emulator, active, for the Exchange
// resource, with the protocol's scope (user tokens; user= is the user or a
// shared mailbox they have FullAccess to) or app role plus Exchange service
// principal plus FullAccess on the mailbox (app tokens). For SMTP the SMTP
// AUTH switches are checked last, as Exchange does once the credentials are
// good.
func (s *Server) authorize(p Protocol, user, token string) (Grant, *authFailure) {
	at, ok := s.em.Lookup(token)
	if !ok {
		return Grant{}, fail("token was not issued by this emulator")
	}
	if at.Revoked {
		return Grant{}, fail("token is revoked")
	}
	if !at.ActiveAt(s.em.Now()) {
		return Grant{}, fail("token expired at %s", at.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if !strings.EqualFold(at.Resource, emulator.ExchangeAppID) {
		return Grant{}, fail("token is for resource %s (%s), not Exchange Online", at.Resource, at.Audience)
	}
	if user == "" && !at.AppOnly() {
		user = at.UPN // OAUTHBEARER may omit a= (RFC 7628): the token's user
	}
	mb, ok := s.mailbox(user)
	if !ok {
		return Grant{}, fail("no mailbox %q", user)
	}
	if !strings.EqualFold(mb.TenantID, at.TenantID) {
		return Grant{}, fail("mailbox %s is in tenant %s, token is for tenant %s", mb.Address, mb.TenantID, at.TenantID)
	}
	g := Grant{Mailbox: mb.Address, ClientID: at.ClientID, TenantID: at.TenantID, AppOnly: at.AppOnly()}
	if at.AppOnly() {
		g.Identity = at.ClientID
		if !at.HasRole(p.role()) {
			return Grant{}, fail("app token lacks role %s (roles %v)", p.role(), at.Roles)
		}
		if !s.em.ExchangeServicePrincipal(at.TenantID, at.ClientID) {
			return Grant{}, fail("app %s has no Exchange service principal in tenant %s (New-ServicePrincipal)", at.ClientID, at.TenantID)
		}
		if !mb.appFullAccess(at.ClientID) {
			return Grant{}, fail("app %s has no FullAccess on mailbox %s (Add-MailboxPermission)", at.ClientID, mb.Address)
		}
	} else {
		g.Identity = at.UPN
		if !at.HasScope(p.scope()) {
			return Grant{}, fail("user token lacks scope %s (scopes %v)", p.scope(), at.Scopes)
		}
		if !mb.userFullAccess(at.UPN) {
			return Grant{}, fail("user %s has no FullAccess on mailbox %s", at.UPN, mb.Address)
		}
	}
	if !mb.protocolEnabled(p) {
		return Grant{}, fail("%s is disabled for mailbox %s (Set-CASMailbox)", strings.ToUpper(p.String()), mb.Address)
	}
	if p == SMTP && !mb.SMTPAuth {
		f := fail("SMTP AUTH is disabled for the %s of %s", mb.smtpDisabledBy(), mb.Address)
		f.smtpDisabled = mb.smtpDisabledBy()
		return Grant{}, f
	}
	return g, nil
}

// bearerChallenge is the RFC 7628 error challenge the OAUTHBEARER server
// sends before its final failure.
func bearerChallenge(p Protocol) []byte {
	b, _ := json.Marshal(map[string]string{"status": "invalid_token", "schemes": "bearer",
		"scope": "https://outlook.office.com/" + p.scope()})
	return b
}

// saslServer is the server side of XOAUTH2 and OAUTHBEARER for all three
// protocols; it implements go-sasl's Server interface. XOAUTH2 fails at
// once with the protocol's generic failure, like Exchange; OAUTHBEARER
// first sends RFC 7628's JSON challenge and fails after the client's ^A.
type saslServer struct {
	s       *Server
	proto   Protocol
	mech    string
	failure error // protocol-specific final failure
	// onFailure maps an authFailure to the error to return (SMTP 5.7.139);
	// nil returns failure.
	onFailure func(*authFailure) error
	// onSuccess is called with the grant; its error (if any) is returned
	// (the SMTP server uses it to send Exchange's 235 text).
	onSuccess func(Grant) error
	remote    string

	started   bool
	challenge bool  // OAUTHBEARER error challenge sent
	pending   error // final failure after the challenge
}

// Next implements sasl.Server.
func (m *saslServer) Next(resp []byte) ([]byte, bool, error) {
	if m.challenge {
		return nil, true, m.pending
	}
	if resp == nil && !m.started {
		m.started = true
		return nil, false, nil // two-step: empty challenge ("+ " / "334 ")
	}
	m.started = true
	var user, token string
	var err error
	if m.mech == "OAUTHBEARER" {
		var ob OAuthBearer
		ob, err = ParseOAuthBearer(resp)
		user, token = ob.User, ob.Token
	} else {
		user, token, err = ParseXOAUTH2(resp)
	}
	var f *authFailure
	var g Grant
	if err != nil {
		f = &authFailure{reason: err.Error()}
	} else {
		g, f = m.s.authorize(m.proto, user, token)
	}
	if f != nil {
		m.s.log.Warn("exchange login refused", "protocol", m.proto.String(), "mechanism", m.mech,
			"user", user, "remote", m.remote, "reason", f.reason)
		final := m.failure
		if m.onFailure != nil {
			final = m.onFailure(f)
		}
		if m.mech == "OAUTHBEARER" && err == nil {
			m.challenge, m.pending = true, final
			return bearerChallenge(m.proto), false, nil
		}
		return nil, true, final
	}
	m.s.log.Info("exchange login", "protocol", m.proto.String(), "mechanism", m.mech, "mailbox", g.Mailbox,
		"identity", g.Identity, "app_only", g.AppOnly, "remote", m.remote)
	if m.onSuccess != nil {
		if err := m.onSuccess(g); err != nil {
			return nil, true, err
		}
	}
	return nil, true, nil
}
