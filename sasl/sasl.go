// Package sasl holds the SASL client mechanisms mail servers use for OAuth
// 2.0 bearer tokens: XOAUTH2 (Microsoft, Google) and OAUTHBEARER (RFC 7628).
//
// Both clients satisfy github.com/emersion/go-sasl's Client interface, so
// go-imap v2's imapclient, go-smtp and our internal/pop3 client drive them
// directly. Unlike go-sasl's own OAUTHBEARER client they acknowledge the
// server's error challenge the way each mechanism requires (XOAUTH2: an
// empty response; OAUTHBEARER: a single 0x01, RFC 7628 §3.2.3), so the server
// can finish the exchange with its final failure reply, and they keep what
// the challenge said (status, scope) for a typed [*AuthError].
//
// Typical use with a protocol library:
//
//	c := sasl.NewXOAUTH2Client(sasl.Options{User: "user@contoso.com", Token: tok})
//	err := imapClient.Authenticate(c)
//	err = sasl.Result(c, err) // *sasl.AuthError when the server sent a challenge
//
// One interop catch with go-imap v2 (beta.8): it writes an empty SASL
// response as "=", and Dovecot answers that with "BAD Invalid base64 data"
// instead of its final NO, so the XOAUTH2 acknowledgement is lost. Package
// mailclient rewrites that line to the empty line RFC 3501 §6.2.2 wants;
// callers driving imapclient themselves need the same (go-smtp and
// internal/pop3 send an empty line already).
package sasl

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gosasl "github.com/emersion/go-sasl"
)

// Mechanism names, as servers advertise them (upper case: some servers are
// reported to reject a lower-case XOAUTH2).
const (
	XOAUTH2     = "XOAUTH2"
	OAUTHBEARER = "OAUTHBEARER"
)

// Options is what both mechanisms send.
type Options struct {
	// User is the mailbox to open: the signed-in user's address, a shared
	// mailbox the user may access, or the mailbox an app-only token was
	// granted. Dovecot 2.3 rejects OAUTHBEARER without it.
	User string
	// Token is the OAuth 2.0 access token for the mail server's resource.
	Token string
	// Host and Port are sent by OAUTHBEARER only (RFC 7628 §3.1: optional
	// key-values naming the server the client connected to).
	Host string
	Port int
}

// Client is a SASL client that remembers the server's error challenge, so a
// failed login can be reported with the server's status and scope.
type Client interface {
	gosasl.Client
	// Failure returns the error challenge the server sent, or nil when it
	// sent none.
	Failure() *AuthError
}

// ErrNoMechanism means the server offers none of the OAuth mechanisms we
// speak (or not the one asked for).
var ErrNoMechanism = errors.New("server offers no usable OAuth SASL mechanism")

// New returns the client for mech (XOAUTH2 or OAUTHBEARER, any case).
func New(mech string, opts Options) (Client, error) {
	switch strings.ToUpper(mech) {
	case XOAUTH2:
		return NewXOAUTH2Client(opts), nil
	case OAUTHBEARER:
		return NewOAuthBearerClient(opts), nil
	}
	return nil, fmt.Errorf("sasl mechanism %q: %w", mech, ErrNoMechanism)
}

// Choose picks the mechanism to use from the server's advertised list
// (IMAP CAPABILITY AUTH=…, SMTP EHLO AUTH …, POP3 CAPA SASL …).
//
// When prefer is set it must be offered: the caller asked for it by name
// (an account setting), so silently using another would hide a mistake.
// Otherwise XOAUTH2 wins when offered, then OAUTHBEARER. XOAUTH2 first
// because it is the one mechanism every OAuth mail server we target speaks
// (Exchange Online offers XOAUTH2 only; Gmail and Dovecot offer both), it is
// the format Microsoft and Google document, and it has no optional parts
// (OAUTHBEARER's a=, host and port are handled differently by servers).
func Choose(offered []string, prefer string) (string, error) {
	has := func(m string) bool {
		for _, o := range offered {
			if strings.EqualFold(o, m) {
				return true
			}
		}
		return false
	}
	if prefer != "" {
		p := strings.ToUpper(prefer)
		if p != XOAUTH2 && p != OAUTHBEARER {
			return "", fmt.Errorf("sasl mechanism %q is not an OAuth mechanism (want XOAUTH2 or OAUTHBEARER): %w", prefer, ErrNoMechanism)
		}
		if !has(p) {
			return "", fmt.Errorf("server does not offer %s (offers %s): %w", p, offeredList(offered), ErrNoMechanism)
		}
		return p, nil
	}
	for _, m := range []string{XOAUTH2, OAUTHBEARER} {
		if has(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("server offers %s: %w", offeredList(offered), ErrNoMechanism)
}

func offeredList(offered []string) string {
	if len(offered) == 0 {
		return "no SASL mechanisms"
	}
	return strings.Join(offered, " ")
}

// XOAUTH2InitialResponse returns the base64 XOAUTH2 initial client response
// (Microsoft's and Google's format: "user=" U ^A "auth=Bearer " T ^A ^A), for
// clients that take a ready-made string (mailoauth token --sasl xoauth2).
func XOAUTH2InitialResponse(user, token string) string {
	return base64.StdEncoding.EncodeToString(xoauth2Payload(user, token))
}

// OAuthBearerInitialResponse returns the base64 OAUTHBEARER initial client
// response of RFC 7628 §3.1 (host and port left out when empty or 0).
func OAuthBearerInitialResponse(opts Options) string {
	return base64.StdEncoding.EncodeToString(oauthBearerPayload(opts))
}

func xoauth2Payload(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// oauthBearerPayload builds gs2-header "n,a=USER," then the key-values.
// RFC 7628 §3.1 with RFC 5801 §4 escaping of ',' and '=' in the authzid.
func oauthBearerPayload(o Options) []byte {
	var b strings.Builder
	b.WriteString("n,")
	if o.User != "" {
		b.WriteString("a=")
		b.WriteString(strings.NewReplacer("=", "=3D", ",", "=2C").Replace(o.User))
	}
	b.WriteString(",")
	if o.Host != "" {
		b.WriteString("\x01host=" + o.Host)
	}
	if o.Port != 0 {
		b.WriteString("\x01port=" + strconv.Itoa(o.Port))
	}
	b.WriteString("\x01auth=Bearer " + o.Token + "\x01\x01")
	return []byte(b.String())
}

// Result turns the outcome of an authentication driven by c into the error
// to report: when the server sent an error challenge, a *AuthError carrying
// it and wrapping err (the protocol's final failure); otherwise err as is.
func Result(c gosasl.Client, err error) error {
	if err == nil {
		return nil
	}
	fc, ok := c.(Client)
	if !ok {
		return err
	}
	f := fc.Failure()
	if f == nil {
		return err
	}
	e := *f
	e.Err = err
	return &e
}
