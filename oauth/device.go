package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/retryafter"
)

// deviceGrantType is RFC 8628 §3.4's grant type.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// Defaults from RFC 8628 §3.2 and §3.5 (and Microsoft's 900 s).
const (
	defaultDeviceInterval = 5 * time.Second
	defaultDeviceExpiry   = 900 * time.Second
	slowDownStep          = 5 * time.Second
	maxTransientFailures  = 3
)

// DeviceAuth is a started device authorization (RFC 8628 §3.2).
type DeviceAuth struct {
	DeviceCode              string        // secret: sent when polling, never shown
	UserCode                string        // what the user types on the verification page
	VerificationURI         string        // Google calls it verification_url; both are read
	VerificationURIComplete string        // the URI with the code in it, when the server offers one
	Message                 string        // Microsoft's localized instructions
	Expiry                  time.Time     // when the device code stops working (expires_in after receipt)
	Interval                time.Duration // wait between polls: the server's interval, 5 s if it named none
	Scopes                  []string      // as requested, recorded on the token when the server names none
}

// String hides the device code.
func (d *DeviceAuth) String() string {
	return fmt.Sprintf("oauth.DeviceAuth{user code %s at %s, expires %s}", d.UserCode, d.VerificationURI, d.Expiry.Format(time.RFC3339))
}

// DevicePrompt is what the user must see to finish a device sign-in.
type DevicePrompt struct {
	VerificationURI         string    // the page to open
	VerificationURIComplete string    // the page with the code filled in, if the server offers one
	UserCode                string    // the code to type there
	Expiry                  time.Time // when the code stops working: the countdown's end
	// Message is the server's own instruction text, or one built from
	// the URI and code when the server sent none.
	Message string
}

// QRText is what a QR code of the prompt should hold: the URI with the
// code in it when the server offers one (the phone then needs no typing),
// else the plain verification URI.
func (p DevicePrompt) QRText() string {
	if p.VerificationURIComplete != "" {
		return p.VerificationURIComplete
	}
	return p.VerificationURI
}

// Prompt returns the DevicePrompt for d.
func (d *DeviceAuth) Prompt() DevicePrompt {
	msg := d.Message
	if msg == "" {
		msg = fmt.Sprintf("To sign in, open %s and enter the code %s", d.VerificationURI, d.UserCode)
	}
	return DevicePrompt{
		VerificationURI: d.VerificationURI, VerificationURIComplete: d.VerificationURIComplete,
		UserCode: d.UserCode, Expiry: d.Expiry, Message: sanitize(msg),
	}
}

type deviceResponse struct {
	DeviceCode              string  `json:"device_code"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURL         string  `json:"verification_url"` // Google
	VerificationURIComplete string  `json:"verification_uri_complete"`
	ExpiresIn               flexInt `json:"expires_in"`
	Interval                flexInt `json:"interval"`
	Message                 string  `json:"message"`
}

// DecodeDeviceResponse decodes a device authorization response received at
// now (RFC 8628 §3.2), accepting Google's verification_url spelling.
func DecodeDeviceResponse(body []byte, now time.Time) (*DeviceAuth, error) {
	var r deviceResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode device authorization response: %w", err)
	}
	uri := r.VerificationURI
	if uri == "" {
		uri = r.VerificationURL
	}
	if r.DeviceCode == "" || r.UserCode == "" || uri == "" {
		return nil, errors.New("device authorization response lacks device_code, user_code or verification_uri")
	}
	if u, err := url.Parse(uri); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("device authorization response: verification uri %q is not a web address", sanitize(uri))
	}
	d := &DeviceAuth{
		DeviceCode: r.DeviceCode, UserCode: sanitize(r.UserCode), VerificationURI: sanitize(uri),
		VerificationURIComplete: sanitize(r.VerificationURIComplete), Message: sanitize(r.Message),
		Interval: defaultDeviceInterval, Expiry: now.Add(defaultDeviceExpiry),
	}
	if r.Interval > 0 {
		d.Interval = time.Duration(r.Interval) * time.Second
	}
	if r.ExpiresIn > 0 {
		d.Expiry = now.Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return d, nil
}

// DeviceAuthorize starts a device sign-in (RFC 8628 §3.1). Google's refusal
// of mail scopes is reported before any request.
func (c *Client) DeviceAuthorize(ctx context.Context, scopes []string) (*DeviceAuth, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.Provider.CheckDeviceFlow(scopes); err != nil {
		return nil, err
	}
	form := url.Values{"client_id": {c.ClientID}}
	if len(scopes) > 0 {
		form.Set("scope", scopeParam(scopes))
	}
	// Public clients only: a device client authenticates, if at all, when
	// polling (Google's "TVs" clients send their secret there).
	cc := *c
	cc.Auth = nil
	status, h, body, err := cc.postForm(ctx, "device authorization", c.Provider.Endpoints.DeviceAuthURL, form)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		e := decodeError("device authorization", status, h.Get("Content-Type"), body, nil)
		e.RetryAfter = retryafter.Header(h, c.now())
		return nil, e
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "" && !strings.Contains(mt, "json") {
		return nil, &Error{Endpoint: "device authorization", HTTPStatus: status,
			Description: fmt.Sprintf("unexpected %s response: %q", mt, excerpt(body, nil)), Hint: hintForStatus(status)}
	}
	d, err := DecodeDeviceResponse(body, c.now())
	if err != nil {
		return nil, err
	}
	d.Scopes = scopes
	return d, nil
}

// DevicePoll polls the token endpoint until the user finishes (RFC 8628
// §3.4, §3.5): it waits Interval before each poll, adds 5 s on slow_down,
// keeps going on authorization_pending, and stops on any other error
// (authorization_declined, access_denied, expired_token...), when the
// device code expires (ErrExpired) or when ctx is cancelled. A few
// transient failures (network, HTTP 5xx) are retried.
func (c *Client) DevicePoll(ctx context.Context, d *DeviceAuth) (*Token, error) {
	interval := d.Interval
	if interval <= 0 {
		interval = defaultDeviceInterval
	}
	transient := 0
	var extra time.Duration // a server's Retry-After, once
	for {
		wait := interval + extra
		extra = 0
		if !d.Expiry.IsZero() {
			left := d.Expiry.Sub(c.now())
			if left <= 0 {
				return nil, fmt.Errorf("device sign-in: the code %s expired before sign-in completed: %w", d.UserCode, ErrExpired)
			}
			wait = min(wait, left)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("device sign-in: %w", err)
		}
		t, err := c.DevicePollOnce(ctx, d)
		if err == nil {
			return t, nil
		}
		var oe *Error
		switch {
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
			transient = 0
		case errors.As(err, &oe) && oe.Code == "slow_down":
			transient = 0
			interval += slowDownStep
		case ctx.Err() != nil:
			return nil, fmt.Errorf("device sign-in: %w", ctx.Err())
		case errors.As(err, &oe) && oe.HTTPStatus == http.StatusTooManyRequests:
			transient++
			if transient > maxTransientFailures {
				return nil, fmt.Errorf("device sign-in: %w", err)
			}
			extra = oe.RetryAfter
		case isTransient(err):
			transient++
			if transient > maxTransientFailures {
				return nil, fmt.Errorf("device sign-in: %w", err)
			}
			c.log().Debug("device poll failed, retrying", "err", err)
		default:
			return nil, fmt.Errorf("device sign-in: %w", err)
		}
	}
}

// DevicePollOnce sends one device-code token request (RFC 8628 §3.4) at
// once, without waiting, and returns the server's answer: the token, or the
// *Error (authorization_pending and slow_down included) unwrapped. The
// request is exactly the one DevicePoll sends, with the Client's credential
// if it has one (so a public client wrongly sent a secret shows
// AADSTS700025). DevicePoll loops over it; a probe that needs a single
// answer (mailoauth doctor) calls it directly.
func (c *Client) DevicePollOnce(ctx context.Context, d *DeviceAuth) (*Token, error) {
	if d == nil || d.DeviceCode == "" {
		return nil, errors.New("device poll: no device code: call DeviceAuthorize first")
	}
	form := url.Values{"grant_type": {deviceGrantType}, "device_code": {d.DeviceCode}, "client_id": {c.ClientID}}
	return c.token(ctx, form, d.Scopes)
}

// DeviceFlow runs a whole device sign-in: DeviceAuthorize, prompt (print
// the URL and code), DevicePoll.
func (c *Client) DeviceFlow(ctx context.Context, scopes []string, prompt func(DevicePrompt)) (*Token, error) {
	d, err := c.DeviceAuthorize(ctx, scopes)
	if err != nil {
		return nil, err
	}
	if prompt != nil {
		prompt(d.Prompt())
	}
	return c.DevicePoll(ctx, d)
}

// isTransient reports errors worth another poll: transport failures and
// server-side 5xx answers, not OAuth errors.
func isTransient(err error) bool {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Code == "" && oe.HTTPStatus >= 500 || oe.Code == "temporarily_unavailable" || oe.Code == "server_error"
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
