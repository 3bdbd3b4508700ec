// Package graph sends and lists mail through Microsoft Graph with plain
// net/http: the few calls mailoauth needs do not justify the Graph SDK
// (hundreds of megabytes of generated code, minutes to build).
//
// Every call takes a context first; the *http.Client is passed in
// explicitly, and the access token (a Graph token: audience
// https://graph.microsoft.com, not an Exchange one) comes from a
// TokenSource asked once per request, so a refreshing source just works.
//
//	c := graph.New(http.DefaultClient, graph.StaticToken(tok))
//	err := c.SendMail(ctx, graph.Me, &graph.Message{To: []string{"bob@contoso.com"}, Subject: "hi", Body: "hello"})
//	msgs, err := c.ListMessages(ctx, graph.User("shared@contoso.com"), graph.ListOptions{Folder: "inbox", Top: 50})
//
// SendMail takes attachments up to 150 MB: past sendMail's 4 MB it creates
// a draft, uploads the large files in chunks through upload sessions and
// sends the draft, as Graph documents (upload.go).
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailoauth/mailoauth/internal/retryafter"
)

// DefaultBaseURL is the global cloud's Graph v1.0 root. National clouds
// have their own hosts (graph.microsoft.us, microsoftgraph.chinacloudapi.cn…).
const DefaultBaseURL = "https://graph.microsoft.com/v1.0"

// TokenSource gives the access token for a request.
type TokenSource interface {
	AccessToken(ctx context.Context) (string, error)
}

// TokenFunc adapts a function to TokenSource.
type TokenFunc func(ctx context.Context) (string, error)

// AccessToken calls f.
func (f TokenFunc) AccessToken(ctx context.Context) (string, error) { return f(ctx) }

// StaticToken is a TokenSource that always returns the same token.
type StaticToken string

// AccessToken returns the token.
func (s StaticToken) AccessToken(context.Context) (string, error) { return string(s), nil }

// Mailbox says whose mail a call touches. Graph refuses /me with an
// app-only token (400 "/me request is only valid with delegated
// authentication flow"), so the caller, who knows which kind of token it
// holds, says which.
type Mailbox struct{ user string }

// Me is the signed-in user's mailbox (delegated tokens only).
var Me = Mailbox{}

// User is the mailbox of a user or shared mailbox by address or id: for
// app-only tokens, or a delegated token with access to that mailbox.
func User(idOrAddress string) Mailbox { return Mailbox{user: idOrAddress} }

// MailboxFor picks the path for mailbox, the address a program was told to
// use, given who the token belongs to. An app token (appOnly) has no user,
// and Graph answers /me with 400, so it gets /users/{mailbox}. A user's
// token gets /me for the user's own mailbox, and /users/{mailbox} when
// mailbox is another one (a shared mailbox, or one the user has FullAccess
// to): /me would silently read and send as the user instead. signedInAs is
// the address the identity provider named at sign-in; when it or mailbox
// is unknown (""), the user's own mailbox is assumed.
func MailboxFor(mailbox, signedInAs string, appOnly bool) Mailbox {
	switch {
	case appOnly:
		return User(mailbox)
	case mailbox != "" && signedInAs != "" && !strings.EqualFold(mailbox, signedInAs):
		return User(mailbox)
	}
	return Me
}

func (m Mailbox) path() string {
	if m.user == "" {
		return "/me"
	}
	return "/users/" + url.PathEscape(m.user)
}

// String names the mailbox as its path.
func (m Mailbox) String() string { return m.path() }

// Client calls Graph. Its fields may be changed before first use.
type Client struct {
	// HTTP sends the requests (its transport decides TLS trust).
	HTTP *http.Client
	// Tokens gives the Graph access token for each request, so a
	// refreshing source keeps a long listing going.
	Tokens TokenSource
	// BaseURL defaults to DefaultBaseURL. @odata.nextLink URLs are only
	// followed when they point at the same scheme and host, so the token is
	// never sent elsewhere.
	BaseURL string
	// MaxRetries bounds the retries of a 429 or 503 (default 3; negative:
	// none).
	MaxRetries int
	// MaxRetryWait is the longest Retry-After we wait for (default 60 s);
	// a longer one returns the *Error at once, with RetryAfter set, so the
	// caller can decide.
	MaxRetryWait time.Duration
	// ChunkSize is the size of each PUT of a large attachment's upload
	// (default DefaultChunkSize); it is rounded down to a multiple of
	// ChunkUnit and kept within [ChunkUnit, MaxChunk], as Graph requires.
	ChunkSize int
	// Logger gets a debug line per retry; nil discards.
	Logger *slog.Logger

	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a client using hc for HTTP and ts for tokens.
func New(hc *http.Client, ts TokenSource) *Client {
	return &Client{HTTP: hc, Tokens: ts}
}

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultBaseURL
	}
	return strings.TrimSuffix(c.BaseURL, "/")
}

// maxBody caps what we read of a response.
const maxBody = 32 << 20

// do sends one request, retrying 429 and 503 as Retry-After says, and
// returns the response body of a 2xx, or an *Error.
func (c *Client) do(ctx context.Context, method, rawURL string, body []byte, wantStatus int) ([]byte, error) {
	_, data, err := c.send(ctx, call{method: method, url: rawURL, body: body, ok: func(st int) bool {
		return st == wantStatus || (wantStatus == 0 && st/100 == 2)
	}})
	return data, err
}

// call is one request for send.
type call struct {
	method, url string
	body        []byte
	contentType string // default application/json when body is set
	header      http.Header
	// noAuth sends no Authorization header: upload session URLs carry
	// their own credential, and Graph refuses a bearer token on them.
	noAuth bool
	// ok says which statuses are success.
	ok func(status int) bool
}

// send sends one request, retrying 429 and 503 as Retry-After says, and
// returns the status and body of a success, or an *Error.
func (c *Client) send(ctx context.Context, cl call) (int, []byte, error) {
	method, rawURL, body := cl.method, cl.url, cl.body
	if c.HTTP == nil || (c.Tokens == nil && !cl.noAuth) {
		return 0, nil, errors.New("graph: client needs an http.Client and a TokenSource")
	}
	maxRetries := c.MaxRetries
	if maxRetries == 0 {
		maxRetries = 3
	}
	maxWait := c.MaxRetryWait
	if maxWait == 0 {
		maxWait = 60 * time.Second
	}
	sleep := c.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
		if err != nil {
			return 0, nil, fmt.Errorf("graph: %w", err)
		}
		if !cl.noAuth {
			tok, err := c.Tokens.AccessToken(ctx)
			if err != nil {
				return 0, nil, fmt.Errorf("graph %s: token: %w", pathOf(rawURL), err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			ct := cl.contentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range cl.header {
			req.Header[k] = v
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("graph %s %s: %w", method, pathOf(rawURL), err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("graph %s %s: read response: %w", method, pathOf(rawURL), err)
		}
		if cl.ok(resp.StatusCode) {
			return resp.StatusCode, data, nil
		}
		gerr := decodeError(resp.StatusCode, resp.Header, data)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return 0, nil, gerr
		}
		if attempt >= maxRetries || maxRetries < 0 {
			return 0, nil, gerr
		}
		wait := gerr.RetryAfter
		if wait == 0 {
			// No Retry-After: back off 1 s, 2 s, 4 s…
			wait = time.Second << attempt
		}
		if wait > maxWait {
			return 0, nil, gerr
		}
		log.Debug("graph throttled, retrying", "method", method, "path", pathOf(rawURL), "status", resp.StatusCode,
			"wait", wait, "attempt", attempt+1, "request_id", gerr.RequestID)
		if err := sleep(ctx, wait); err != nil {
			return 0, nil, fmt.Errorf("graph %s %s: waiting to retry: %w", method, pathOf(rawURL), err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// pathOf returns the path of a URL for errors (no query: it may be long).
func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "?"
	}
	return u.Path
}

// Error is a Graph error response: the HTTP status and Graph's error
// envelope {"error":{"code","message","innerError":{"request-id",…}}}.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code and Message are the envelope's error.code and error.message.
	Code    string // e.g. InvalidAuthenticationToken, ErrorAccessDenied
	Message string
	// RequestID, ClientRequestID and Date are the envelope's innerError
	// fields, which Microsoft support asks for.
	RequestID       string
	ClientRequestID string
	Date            string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
}

// Error reports status, code, message and request id (which Microsoft
// support asks for).
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request-id " + e.RequestID + ")")
	}
	return b.String()
}

// Hint says what to do about errors whose fix is known.
func (e *Error) Hint() string {
	switch {
	case e.Code == "InvalidAuthenticationToken":
		return "the token is missing, expired or not for Graph: get a token for https://graph.microsoft.com (an Exchange token is rejected)"
	case e.StatusCode == 400 && strings.Contains(e.Message, "/me request is only valid with delegated"):
		return "an app-only token cannot use /me: name the mailbox (graph.User)"
	case e.Code == "ErrorAccessDenied" || e.StatusCode == 403:
		return "the token lacks the permission (Mail.Send, Mail.Read…; a message with large attachments goes through a draft, which needs Mail.ReadWrite) or consent, or an application access policy blocks this mailbox"
	case e.Code == "MailboxNotEnabledForRESTAPI" || e.Code == "ResourceNotFound":
		return "the user has no Exchange Online mailbox (no licence, on-premises or deleted), or the address is wrong"
	case e.StatusCode == 429 || e.StatusCode == 503:
		return "Graph is throttling: retry after the time it gave"
	}
	return ""
}

type errorEnvelope struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

const maxErrorText = 1024

// decodeError builds an *Error from a non-2xx response. A body that is not
// Graph's envelope leaves Code empty and keeps a capped bit of the text.
func decodeError(status int, h http.Header, body []byte) *Error {
	e := &Error{StatusCode: status, RetryAfter: retryafter.Header(h, time.Now())}
	var env errorEnvelope
	if err := json.Unmarshal(body, &env); err == nil && env.Error.Code != "" {
		e.Code = capText(env.Error.Code)
		e.Message = capText(env.Error.Message)
		e.RequestID = capText(env.Error.InnerError.RequestID)
		e.ClientRequestID = capText(env.Error.InnerError.ClientRequestID)
		e.Date = capText(env.Error.InnerError.Date)
	} else {
		e.Message = capText(strings.TrimSpace(string(body)))
	}
	if e.RequestID == "" {
		e.RequestID = capText(h.Get("request-id"))
	}
	return e
}

// capText makes s valid UTF-8 of at most maxErrorText bytes (plus "…"
// when cut), cut on a rune boundary.
func capText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
