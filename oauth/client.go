// Package oauth obtains OAuth 2.0 tokens for mail: device code, authorization
// code with PKCE on a loopback redirect (or pasted), confidential web apps,
// client credentials with a secret or a certificate, refresh with scope,
// Microsoft admin consent and, on explicit request, the password grant.
//
// Every call takes a context first and uses the Client's *http.Client, never
// one hidden in a context. Failures from the server are *Error values with
// the OAuth code, Microsoft's AADSTS numbers and correlation id, and a hint.
//
//	p, _ := provider.Microsoft(provider.MicrosoftOptions{Tenant: "common"})
//	c := &oauth.Client{HTTP: http.DefaultClient, Provider: p, ClientID: id}
//	tok, err := c.DeviceFlow(ctx, scopes, func(pr oauth.DevicePrompt) { fmt.Fprintln(os.Stderr, pr.Message) })
//
// Why not golang.org/x/oauth2 for the token endpoint: it cannot send a
// client_assertion (a fresh signed JWT per request), its refresh does not send
// scope (Microsoft needs scope to turn one refresh token into an Exchange and a
// Graph token), it hides the *http.Client in a context, and its errors lose
// Microsoft's error_codes and correlation id. So the token endpoint calls are
// written here (RFC 6749 §4, §5, §6; RFC 8628; RFC 7523); x/oauth2 is still
// used for what it does well: PKCE verifiers/challenges and building the
// authorization URL.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/retryafter"
	"github.com/mailoauth/mailoauth/provider"
)

// maxResponseBytes bounds what is read from a token endpoint.
const maxResponseBytes = 1 << 20

// Client talks to one provider as one registered application.
type Client struct {
	// HTTP sends every request. nil means http.DefaultClient; pass your
	// own to set timeouts, proxies or the emulator's CA.
	HTTP *http.Client
	// Provider holds the endpoints and the provider's quirks.
	Provider *provider.Provider
	// ClientID is the application (client) id.
	ClientID string
	// Auth authenticates a confidential client at the token endpoint
	// (ClientSecret, *Certificate); nil for public clients, which must
	// not send a credential (Microsoft AADSTS700025).
	Auth ClientAuth
	// TokenParams are added to every token request, e.g. resource
	// (RFC 8707 resource indicators) for servers that want one.
	TokenParams url.Values
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Logger receives debug lines about requests (never their secrets);
	// nil means slog.Default().
	Logger *slog.Logger
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) check() error {
	if c.Provider == nil {
		return errors.New("oauth client has no provider")
	}
	if c.ClientID == "" {
		return errors.New("oauth client has no client id")
	}
	return nil
}

// tokenResponse is a successful token response (RFC 6749 §5.1 plus
// Microsoft's ext_expires_in and refresh_in). Numbers may arrive as strings
// from Microsoft's v1 endpoints, so they are decoded leniently.
type tokenResponse struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	RefreshToken string    `json:"refresh_token"`
	IDToken      string    `json:"id_token"`
	ExpiresIn    flexInt   `json:"expires_in"`
	ExtExpiresIn flexInt   `json:"ext_expires_in"`
	RefreshIn    flexInt   `json:"refresh_in"`
	Scope        flexScope `json:"scope"`
}

// flexInt accepts 3599 and "3599".
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Some servers send 3599.0.
		fv, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not a number: %s", excerpt(b, nil))
		}
		v = int64(fv)
	}
	if v < 0 || v > 10*365*24*3600 {
		return fmt.Errorf("duration %d out of range", v)
	}
	*f = flexInt(v)
	return nil
}

// flexScope accepts "a b" (RFC 6749) and ["a","b"].
type flexScope []string

func (f *flexScope) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = strings.Fields(s)
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("scope is neither a string nor a list")
	}
	*f = ss
	return nil
}

// DecodeTokenResponse decodes a successful token response body received at
// time now. When the server names no scope, the requested ones are recorded
// (RFC 6749 §5.1: scope may be omitted when identical to the request).
func DecodeTokenResponse(body []byte, now time.Time, requested []string) (*Token, error) {
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("decode token response: %w", err)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer") {
		// XOAUTH2/OAUTHBEARER and Graph carry bearer tokens only; a DPoP
		// or MAC token would fail later with a far less clear message.
		return nil, fmt.Errorf("token type %q is not supported: want Bearer", sanitize(tr.TokenType))
	}
	t := &Token{
		AccessToken:  tr.AccessToken,
		TokenType:    "Bearer",
		RefreshToken: tr.RefreshToken,
		IDToken:      tr.IDToken,
		Scope:        []string(tr.Scope),
	}
	if len(t.Scope) == 0 {
		t.Scope = append([]string(nil), requested...)
	}
	if tr.ExpiresIn > 0 {
		t.Expiry = now.Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if tr.ExtExpiresIn > 0 {
		t.ExtExpiry = now.Add(time.Duration(tr.ExtExpiresIn) * time.Second)
	}
	if tr.RefreshIn > 0 {
		t.RefreshAt = now.Add(time.Duration(tr.RefreshIn) * time.Second)
	}
	return t, nil
}

// DecodeErrorResponse decodes a failed token or device endpoint response.
// secrets (the request's secret values) are scrubbed from the result.
func DecodeErrorResponse(status int, header http.Header, body []byte, secrets ...string) *Error {
	e := decodeError("token", status, header.Get("Content-Type"), body, secrets)
	e.RetryAfter = retryafter.Header(header, time.Now())
	return e
}

// postForm sends form to endpointURL with client authentication and returns
// the status, headers and body. Transport errors are wrapped without the
// request body, which holds secrets.
func (c *Client) postForm(ctx context.Context, what, endpointURL string, form url.Values) (int, http.Header, []byte, error) {
	if endpointURL == "" {
		return 0, nil, nil, fmt.Errorf("%s: provider has no %s endpoint", what, what)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Accept", "application/json")
	if c.Auth != nil {
		if err := c.Auth.Authenticate(ctx, ClientAuthRequest{
			ClientID: c.ClientID, TokenURL: c.Provider.Endpoints.TokenURL, Endpoint: endpointURL,
			Provider: c.Provider, Form: form, Header: h, Now: c.now,
		}); err != nil {
			return 0, nil, nil, fmt.Errorf("%s: client authentication: %w", what, err)
		}
	}
	if form.Get("client_id") == "" && h.Get("Authorization") == "" {
		// Public clients identify themselves in the body (RFC 6749 §4.1.3).
		form.Set("client_id", c.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpointURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s: build request: %w", what, err)
	}
	req.Header = h
	start := c.now()
	resp, err := c.http().Do(req)
	if err != nil {
		// *url.Error holds the URL only, never the body.
		return 0, nil, nil, fmt.Errorf("%s request: %w", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s response: read body: %w", what, err)
	}
	c.log().Debug("oauth request", "endpoint", what, "url", endpointURL, "grant_type", form.Get("grant_type"),
		"status", resp.StatusCode, "elapsed", c.now().Sub(start))
	return resp.StatusCode, resp.Header, body, nil
}

// secretsOf lists the form's secret values, to scrub them from errors.
func secretsOf(form url.Values) []string {
	var s []string
	for _, k := range []string{"client_secret", "client_assertion", "code", "code_verifier", "refresh_token", "password", "device_code", "assertion"} {
		if v := form.Get(k); v != "" {
			s = append(s, v)
		}
	}
	return s
}

// token posts a token request (any grant) and decodes the answer.
func (c *Client) token(ctx context.Context, form url.Values, requested []string) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	for k, vs := range c.TokenParams {
		if form.Get(k) == "" {
			form[k] = vs
		}
	}
	secrets := secretsOf(form)
	status, h, body, err := c.postForm(ctx, "token", c.Provider.Endpoints.TokenURL, form)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		e := decodeError("token", status, h.Get("Content-Type"), body, secrets)
		e.RetryAfter = retryafter.Header(h, c.now())
		return nil, e
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "" && !strings.Contains(mt, "json") {
		return nil, &Error{Endpoint: "token", HTTPStatus: status,
			Description: fmt.Sprintf("unexpected %s response, not a token: %q", mt, excerpt(body, secrets)), Hint: hintForStatus(status)}
	}
	// The receipt time is taken after the response arrived, so expiry
	// errs on the early side (reference §6).
	t, err := DecodeTokenResponse(body, c.now(), requested)
	if err != nil {
		return nil, fmt.Errorf("token response from %s: %w", c.Provider.Endpoints.TokenURL, err)
	}
	return t, nil
}

// scopeParam joins scopes for the scope parameter (RFC 6749 §3.3).
func scopeParam(scopes []string) string { return strings.Join(scopes, " ") }
