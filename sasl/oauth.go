package sasl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// AuthError is a login the server refused with an OAuth error challenge
// (RFC 7628 §3.2.2; Google's XOAUTH2 uses the same JSON). It never holds the
// token: only what the server said.
type AuthError struct {
	// Mechanism is XOAUTH2 or OAUTHBEARER.
	Mechanism string
	// Status is the challenge's "status": "invalid_token" (RFC 7628),
	// "401" (Google, Dovecot's XOAUTH2), "insufficient_scope"…
	Status string
	// Schemes and Scope are the challenge's "schemes" and "scope".
	Schemes string
	Scope   string
	// OpenIDConfiguration is the challenge's "openid-configuration" URL.
	OpenIDConfiguration string
	// Challenge is the decoded challenge as received (capped), for
	// challenges that were not the JSON we expect.
	Challenge string
	// Err is the protocol's final failure (an IMAP NO, SMTP 535, POP3 -ERR),
	// set by [Result].
	Err error
}

// Error says which mechanism failed and what the server's challenge said.
func (e *AuthError) Error() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(e.Mechanism) + " authentication failed")
	if e.Status != "" {
		b.WriteString(": status " + strconv.Quote(e.Status))
	} else if e.Challenge != "" {
		b.WriteString(": challenge " + strconv.Quote(e.Challenge))
	}
	if e.Scope != "" {
		b.WriteString(", scope " + strconv.Quote(e.Scope))
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the protocol's final failure.
func (e *AuthError) Unwrap() error { return e.Err }

// maxChallengeKept caps what a hostile server can make us keep and print.
const maxChallengeKept = 512

// ParseChallenge decodes a server's error challenge (already base64-decoded
// by the protocol layer) into an AuthError. A challenge that is not a JSON
// object still yields an AuthError (with Challenge set), because either way
// the server is refusing the login.
func ParseChallenge(mech string, challenge []byte) *AuthError {
	e := &AuthError{Mechanism: mech}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(challenge), &raw); err != nil {
		e.Challenge = capString(string(challenge))
		return e
	}
	e.Status = jsonText(raw["status"])
	e.Schemes = jsonText(raw["schemes"])
	e.Scope = jsonText(raw["scope"])
	e.OpenIDConfiguration = jsonText(raw["openid-configuration"])
	if e.Status == "" {
		e.Challenge = capString(string(challenge))
	}
	return e
}

// jsonText reads a JSON string, or a number's text (some servers send
// "status":401 without quotes).
func jsonText(m json.RawMessage) string {
	if len(m) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(m, &s); err == nil {
		return capString(s)
	}
	var n json.Number
	if err := json.Unmarshal(m, &n); err == nil {
		return n.String()
	}
	return ""
}

// capString makes s valid UTF-8 and at most maxChallengeKept bytes, cut
// on a rune boundary.
func capString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxChallengeKept {
		return s
	}
	cut := maxChallengeKept
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// oauthClient is the state both mechanisms share: the initial response,
// whether the server asked for it again, and the error challenge.
type oauthClient struct {
	mech    string
	payload []byte
	// ack is what answers an error challenge: empty for XOAUTH2 (Google's
	// and Microsoft's docs), 0x01 for OAUTHBEARER (RFC 7628 §3.2.3).
	ack     []byte
	resent  bool
	failure *AuthError
}

// NewXOAUTH2Client returns an XOAUTH2 client. go-sasl dropped XOAUTH2 on
// purpose (emersion/go-sasl#19, "non-standard"), yet Exchange Online speaks
// nothing else, so we carry it here.
func NewXOAUTH2Client(opts Options) Client {
	return &oauthClient{mech: XOAUTH2, payload: xoauth2Payload(opts.User, opts.Token), ack: []byte{}}
}

// NewOAuthBearerClient returns an OAUTHBEARER client (RFC 7628). We write it
// rather than use go-sasl's because that one answers the error challenge
// with an error instead of the 0x01 the RFC requires, so the server never
// sends its final reply (Dovecot logs "client didn't finish SASL auth").
func NewOAuthBearerClient(opts Options) Client {
	return &oauthClient{mech: OAUTHBEARER, payload: oauthBearerPayload(opts), ack: []byte{0x01}}
}

// Start returns the mechanism and the initial response.
func (c *oauthClient) Start() (string, []byte, error) {
	return c.mech, c.payload, nil
}

// Next answers a server challenge. An empty challenge before any error is
// the server asking for the initial response (a server that ignored the
// initial response, or a library that sent none): we send it once. A
// non-empty challenge is the error challenge: we keep it and acknowledge it
// so the server can send its final failure. A returned non-nil empty slice
// matters: go-smtp ends the exchange silently on a nil response.
func (c *oauthClient) Next(challenge []byte) ([]byte, error) {
	if c.failure != nil {
		return nil, fmt.Errorf("%s: unexpected server challenge after the error challenge", strings.ToLower(c.mech))
	}
	if len(challenge) == 0 && !c.resent {
		c.resent = true
		return c.payload, nil
	}
	c.failure = ParseChallenge(c.mech, challenge)
	return c.ack, nil
}

// Failure returns the error challenge the server sent, or nil.
func (c *oauthClient) Failure() *AuthError { return c.failure }
