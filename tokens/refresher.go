package tokens

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailoauth/mailoauth/internal/retryafter"
	"github.com/mailoauth/mailoauth/oauth"
)

// Refresher calls the token endpoint with a refresh token (RFC 6749 §6),
// asking for scopes (one resource per request: Microsoft issues one
// access token per resource). It is defined here, by its consumer, so the
// engine works with any token client; the oauth package provides one.
//
// A Refresher for a flow without refresh tokens (client credentials) gets
// an empty refreshToken and acquires a new token its own way.
type Refresher interface {
	Refresh(ctx context.Context, refreshToken string, scopes []string) (*oauth.Token, error)
}

// RefresherFunc adapts a function to Refresher.
type RefresherFunc func(ctx context.Context, refreshToken string, scopes []string) (*oauth.Token, error)

// Refresh calls f.
func (f RefresherFunc) Refresh(ctx context.Context, refreshToken string, scopes []string) (*oauth.Token, error) {
	return f(ctx, refreshToken, scopes)
}

// The engine decides what to do with a failed refresh from the error: a
// *oauth.Error (Code, HTTPStatus, RetryAfter, and its errors.Is mapping onto
// oauth.ErrReloginRequired / ErrConsentRequired), a *oauth2.RetrieveError, or
// any error in the chain with these optional methods, so that other token
// clients can take part without importing anything.

// OAuthCoder is implemented by errors carrying the OAuth 2.0 error code of a
// token-endpoint answer (RFC 6749 §5.2), e.g. "invalid_grant".
type OAuthCoder interface{ OAuthCode() string }

// HTTPStatusCoder is implemented by errors carrying the HTTP status of the
// token endpoint's answer.
type HTTPStatusCoder interface{ HTTPStatusCode() int }

// RetryAfterer is implemented by errors carrying the server's Retry-After
// (RFC 9110 §10.2.3) as a duration; zero means the server sent none.
type RetryAfterer interface{ RetryAfter() time.Duration }

// class is what a refresh failure means for the engine.
type class int

const (
	classFatal     class = iota // other client-side errors: retrying will not help
	classRelogin                // the refresh token is dead: a login is needed
	classTransient              // 5xx, timeout, connection trouble: retry with backoff
	classThrottled              // 429: wait Retry-After
)

// reloginCodes are the OAuth error codes after which only an interactive
// login helps. invalid_grant covers expiry, revocation, password change and
// withdrawn consent (RFC 6749 §5.2; Microsoft adds AADSTS details to the
// description); the others are OpenID Connect's interaction errors, which
// Microsoft returns on refresh when MFA or consent is newly required.
var reloginCodes = map[string]bool{
	"invalid_grant":        true,
	"interaction_required": true,
	"login_required":       true,
	"consent_required":     true,
}

// classify sorts a Refresher error and extracts the server's Retry-After.
func classify(err error) (class, time.Duration) {
	var (
		code   string
		status int
		after  time.Duration
	)
	var (
		c OAuthCoder
		s HTTPStatusCoder
		r RetryAfterer
	)
	if errors.As(err, &c) {
		code = c.OAuthCode()
	}
	if errors.As(err, &s) {
		status = s.HTTPStatusCode()
	}
	if errors.As(err, &r) {
		after = r.RetryAfter()
	}
	// This module's token client. Its fields, not methods, carry the facts.
	var oe *oauth.Error
	if errors.As(err, &oe) {
		code, status, after = oe.Code, oe.HTTPStatus, oe.RetryAfter
	}
	// The oauth package also maps Microsoft's AADSTS numbers (MFA newly
	// required, password changed…) onto these states.
	if errors.Is(err, ErrReloginRequired) || errors.Is(err, oauth.ErrConsentRequired) {
		return classRelogin, 0
	}
	// golang.org/x/oauth2's error, so its token clients work unchanged.
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		if code == "" {
			code = re.ErrorCode
		}
		if re.Response != nil {
			if status == 0 {
				status = re.Response.StatusCode
			}
			if after == 0 {
				after = retryafter.Header(re.Response.Header, time.Now())
			}
		}
	}
	switch {
	case reloginCodes[code]:
		return classRelogin, 0
	case status == http.StatusTooManyRequests:
		return classThrottled, after
	case status >= 500 || code == "temporarily_unavailable" || code == "server_error":
		return classTransient, after
	case status != 0 || code != "":
		return classFatal, 0
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return classTransient, 0
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return classTransient, 0 // the attempt's own timeout
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		return classTransient, 0 // connection refused, reset, DNS…
	}
	return classFatal, 0
}
