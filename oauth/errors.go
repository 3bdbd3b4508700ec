package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors name the states a caller branches on. A *Error matches
// them with errors.Is, so callers need not know OAuth codes or AADSTS
// numbers:
//
//	if errors.Is(err, oauth.ErrReloginRequired) { /* ask the user to sign in again */ }
var (
	// ErrReloginRequired: the grant (refresh token, code) is expired,
	// revoked or needs interaction (MFA); only an interactive sign-in helps.
	ErrReloginRequired = errors.New("sign-in required again")
	// ErrConsentRequired: a user or an administrator must consent to the
	// application's permissions first.
	ErrConsentRequired = errors.New("consent required")
	// ErrAccessDenied: the user or administrator declined.
	ErrAccessDenied = errors.New("access denied")
	// ErrExpired: the device code or the interactive sign-in timed out.
	ErrExpired = errors.New("sign-in expired")
	// ErrInvalidClient: the application's registration or credentials are
	// wrong (client id, secret, certificate, public/confidential setting).
	ErrInvalidClient = errors.New("invalid client")
	// ErrThrottled: the server asks the client to slow down (HTTP 429,
	// AADSTS50196 loop detection, tenant throttling).
	ErrThrottled = errors.New("throttled")
)

// Error is a failure reported by a token, device authorization or
// authorization endpoint (RFC 6749 §5.2 / §4.1.2.1), with Microsoft's
// additions decoded (reference §3.1).
//
// Error() prints the code, the first AADSTS number, the description and the
// correlation id: never a token, secret, code or verifier. Descriptions are
// scrubbed of the request's secrets before they are stored, in case a server
// echoes them.
type Error struct {
	Code          string        `json:"error,omitempty"`             // OAuth "error", e.g. invalid_grant; "" when the body was not an OAuth error
	AADSTS        []int         `json:"aadsts,omitempty"`            // Microsoft error_codes (or the AADSTS number in the description)
	Description   string        `json:"error_description,omitempty"` // without Microsoft's Trace/Correlation/Timestamp lines
	CorrelationID string        `json:"correlation_id,omitempty"`    // Microsoft correlation_id: quote it to Microsoft support
	TraceID       string        `json:"trace_id,omitempty"`          // Microsoft trace_id
	Timestamp     string        `json:"timestamp,omitempty"`         // Microsoft timestamp, as sent ("2016-01-09 02:02:12Z")
	SubError      string        `json:"suberror,omitempty"`          // Microsoft suberror, e.g. consent_required, basic_action
	URI           string        `json:"error_uri,omitempty"`         // error_uri
	Claims        string        `json:"claims,omitempty"`            // Microsoft claims challenge, to send back as the claims parameter
	HTTPStatus    int           `json:"http_status,omitempty"`       // 0 for errors from a redirect
	RetryAfter    time.Duration `json:"-"`                           // from a Retry-After header; in JSON as retry_after_seconds
	Hint          string        `json:"hint,omitempty"`              // what to do, in plain words, when known
	Endpoint      string        `json:"endpoint,omitempty"`          // "token", "device authorization", "authorization", "admin consent"
}

// MarshalJSON gives every field, for the CLI's --json output.
func (e *Error) MarshalJSON() ([]byte, error) {
	type plain Error
	return json.Marshal(struct {
		*plain
		RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`
	}{(*plain)(e), int(e.RetryAfter / time.Second)})
}

// FirstAADSTS returns the first AADSTS number, or 0.
func (e *Error) FirstAADSTS() int {
	if len(e.AADSTS) == 0 {
		return 0
	}
	return e.AADSTS[0]
}

// Error gives one line: the endpoint, the code, the AADSTS number, the
// description and the correlation id to quote to Microsoft support.
func (e *Error) Error() string {
	var b strings.Builder
	ep := e.Endpoint
	if ep == "" {
		ep = "oauth"
	}
	b.WriteString(ep)
	b.WriteString(" endpoint")
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	} else if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	}
	if n := e.FirstAADSTS(); n != 0 && !strings.Contains(e.Description, "AADSTS"+strconv.Itoa(n)) {
		fmt.Fprintf(&b, " (AADSTS%d)", n)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.CorrelationID != "" {
		b.WriteString(" [correlation id ")
		b.WriteString(e.CorrelationID)
		b.WriteString("]")
	}
	return b.String()
}

// Is maps the error onto the sentinel states (ErrReloginRequired...).
func (e *Error) Is(target error) bool {
	has := func(codes ...int) bool {
		for _, c := range codes {
			for _, a := range e.AADSTS {
				if a == c {
					return true
				}
			}
		}
		return false
	}
	switch target {
	case ErrConsentRequired:
		return e.Code == "consent_required" || e.SubError == "consent_required" || has(65001, 650057, 65005, 650056)
	case ErrReloginRequired:
		if e.Code == "consent_required" || e.SubError == "consent_required" {
			return false
		}
		return e.Code == "invalid_grant" || e.Code == "interaction_required" || e.Code == "login_required" ||
			has(50173, 700082, 700084, 70008, 50076, 50079, 50078, 70043)
	case ErrAccessDenied:
		return e.Code == "access_denied" || e.Code == "authorization_declined" || e.Code == "permission_denied" || has(65004)
	case ErrExpired:
		return e.Code == "expired_token" || has(70019)
	case ErrInvalidClient:
		return e.Code == "invalid_client" || e.Code == "unauthorized_client"
	case ErrThrottled:
		return e.HTTPStatus == 429 || e.Code == "slow_down" || has(50196, 90055)
	}
	return false
}

// maxExcerpt bounds how much of a non-OAuth error body goes into an error.
const maxExcerpt = 160

// traceLineRE matches the diagnostic lines Microsoft appends to
// error_description (reference §3.1).
var traceLineRE = regexp.MustCompile(`(?m)^\s*(Trace ID|Correlation ID|Timestamp):\s*(.*?)\s*$`)

var aadstsRE = regexp.MustCompile(`AADSTS(\d{4,9})`)

// errorBody is the JSON error envelope (RFC 6749 §5.2 + Microsoft).
type errorBody struct {
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
	ErrorURI         string          `json:"error_uri"`
	ErrorCodes       []json.Number   `json:"error_codes"`
	Timestamp        string          `json:"timestamp"`
	TraceID          string          `json:"trace_id"`
	CorrelationID    string          `json:"correlation_id"`
	SubError         string          `json:"suberror"`
	Claims           json.RawMessage `json:"claims"`
}

// decodeError turns a non-2xx token or device endpoint response into an
// *Error. secrets are removed from anything copied out of the body.
func decodeError(endpoint string, status int, contentType string, body []byte, secrets []string) *Error {
	e := &Error{Endpoint: endpoint, HTTPStatus: status}
	var eb errorBody
	mt, _, _ := mime.ParseMediaType(contentType)
	if len(bytes.TrimSpace(body)) == 0 {
		e.Description = "empty response"
		e.Hint = hintForStatus(status)
		return e
	}
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		kind := mt
		if kind == "" {
			kind = "unknown"
		}
		e.Description = fmt.Sprintf("unexpected %s response, not an OAuth error: %q", kind, excerpt(body, secrets))
		e.Hint = hintForStatus(status)
		return e
	}
	e.Code = redact(sanitize(eb.Error), secrets)
	e.URI = redact(sanitize(eb.ErrorURI), secrets)
	e.TraceID = eb.TraceID
	e.CorrelationID = eb.CorrelationID
	e.Timestamp = sanitize(eb.Timestamp)
	e.SubError = sanitize(eb.SubError)
	if len(eb.Claims) > 0 {
		var s string
		if json.Unmarshal(eb.Claims, &s) == nil {
			e.Claims = s
		} else {
			e.Claims = string(eb.Claims)
		}
	}
	for _, n := range eb.ErrorCodes {
		if v, err := strconv.Atoi(n.String()); err == nil {
			e.AADSTS = append(e.AADSTS, v)
		}
	}
	e.setDescription(eb.ErrorDescription, secrets)
	e.Hint = hintFor(e)
	return e
}

// setDescription stores desc without Microsoft's trace lines (filling the
// ids from them when the JSON fields were absent) and without secrets.
func (e *Error) setDescription(desc string, secrets []string) {
	for _, m := range traceLineRE.FindAllStringSubmatch(desc, -1) {
		switch m[1] {
		case "Trace ID":
			if e.TraceID == "" {
				e.TraceID = m[2]
			}
		case "Correlation ID":
			if e.CorrelationID == "" {
				e.CorrelationID = m[2]
			}
		case "Timestamp":
			if e.Timestamp == "" {
				e.Timestamp = m[2]
			}
		}
	}
	desc = traceLineRE.ReplaceAllString(desc, "")
	desc = strings.Join(strings.Fields(sanitize(desc)), " ")
	if len(e.AADSTS) == 0 {
		for _, m := range aadstsRE.FindAllStringSubmatch(desc, -1) {
			if v, err := strconv.Atoi(m[1]); err == nil {
				e.AADSTS = append(e.AADSTS, v)
			}
		}
	}
	e.Description = redact(desc, secrets)
	e.CorrelationID = redact(sanitize(e.CorrelationID), secrets)
	e.TraceID = redact(sanitize(e.TraceID), secrets)
}

// ErrorFromQuery returns the error carried by a redirect's query
// (RFC 6749 §4.1.2.1: error, error_description, error_uri), or nil when the
// query has no error parameter.
func ErrorFromQuery(endpoint string, q url.Values) *Error {
	code := q.Get("error")
	if code == "" {
		return nil
	}
	e := &Error{Endpoint: endpoint, Code: sanitize(code), URI: sanitize(q.Get("error_uri")), SubError: sanitize(q.Get("suberror"))}
	e.setDescription(q.Get("error_description"), []string{q.Get("code")})
	e.Hint = hintFor(e)
	return e
}

// sanitize drops control characters so a hostile server cannot rewrite the
// user's terminal through an error message.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, s)
}

// redact replaces every occurrence of a secret in s. Secrets shorter than 4
// bytes are left alone: replacing them would only mangle ordinary words.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
			if q := url.QueryEscape(sec); q != sec {
				s = strings.ReplaceAll(s, q, "[redacted]")
			}
		}
	}
	return s
}

// excerpt is a short, printable, secret-free start of a body. HTML tags are
// dropped so a proxy's error page reads as its text.
func excerpt(body []byte, secrets []string) string {
	if tokenFieldRE.Match(body) {
		// A form-encoded or otherwise odd success body may hold a token:
		// say nothing of its content.
		return "[body withheld: it names a token field]"
	}
	s := string(body)
	if len(s) > 4096 {
		s = s[:4096]
	}
	s = htmlTagRE.ReplaceAllString(s, " ")
	s = strings.Join(strings.Fields(sanitize(s)), " ")
	s = redact(s, secrets)
	if len(s) > maxExcerpt {
		cut := maxExcerpt
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

var tokenFieldRE = regexp.MustCompile(`(?i)(access|refresh|id)_token|device_code`)

var htmlTagRE = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)

func hintForStatus(status int) string {
	switch {
	case status == 429:
		return "the server is throttling requests: wait and retry later"
	case status >= 500:
		return "the server had a problem: retry later"
	case status == 404:
		return "the endpoint URL is wrong: check the tenant, cloud, authority or issuer"
	}
	return "a proxy or a wrong endpoint URL may be answering instead of the authorization server: check the tenant, cloud, authority or issuer"
}
