package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const msError = `{"error":"invalid_client","error_description":"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.\r\nTrace ID: 0b1c6a2e-1111-2222-3333-444455556666\r\nCorrelation ID: 8c3c9b0a-aaaa-bbbb-cccc-ddddeeeeffff\r\nTimestamp: 2026-11-22 00:10:00Z","error_codes":[7000218],"timestamp":"2026-11-22 00:10:00Z","trace_id":"0b1c6a2e-1111-2222-3333-444455556666","correlation_id":"8c3c9b0a-aaaa-bbbb-cccc-ddddeeeeffff","error_uri":"https://login.microsoftonline.com/error?code=7000218"}`

func TestDecodeErrorResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		header map[string]string
		want   *Error
	}{
		{
			name: "microsoft 7000218", status: 401, ctype: "application/json; charset=utf-8", body: msError,
			want: &Error{
				Code: "invalid_client", AADSTS: []int{7000218},
				Description:   "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
				CorrelationID: "8c3c9b0a-aaaa-bbbb-cccc-ddddeeeeffff", TraceID: "0b1c6a2e-1111-2222-3333-444455556666",
				Timestamp: "2026-11-22 00:10:00Z", URI: "https://login.microsoftonline.com/error?code=7000218",
				HTTPStatus: 401, Endpoint: "token", Hint: aadstsHints[7000218],
			},
		},
		{
			name: "ids only in description", status: 400, ctype: "application/json",
			body: `{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented.\r\nTrace ID: t1\r\nCorrelation ID: c1\r\nTimestamp: 2026-01-01 00:00:00Z","suberror":"consent_required"}`,
			want: &Error{Code: "invalid_grant", AADSTS: []int{65001}, Description: "AADSTS65001: The user or administrator has not consented.",
				CorrelationID: "c1", TraceID: "t1", Timestamp: "2026-01-01 00:00:00Z", SubError: "consent_required",
				HTTPStatus: 400, Endpoint: "token", Hint: aadstsHints[65001]},
		},
		{
			name: "plain rfc 6749", status: 400, ctype: "application/json",
			body: `{"error":"invalid_grant","error_description":"grant request is invalid"}`,
			want: &Error{Code: "invalid_grant", Description: "grant request is invalid", HTTPStatus: 400, Endpoint: "token", Hint: codeHints["invalid_grant"]},
		},
		{
			name: "throttled", status: 429, ctype: "application/json", header: map[string]string{"Retry-After": "60"},
			body: `{"error":"temporarily_unavailable"}`,
			want: &Error{Code: "temporarily_unavailable", HTTPStatus: 429, Endpoint: "token", RetryAfter: time.Minute, Hint: hintForStatus(429)},
		},
		{
			name: "html proxy page", status: 502, ctype: "text/html",
			body: "<html><head><style>p{}</style></head><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>",
			want: &Error{HTTPStatus: 502, Endpoint: "token", Description: `unexpected text/html response, not an OAuth error: "502 Bad Gateway nginx"`, Hint: hintForStatus(502)},
		},
		{
			name: "claims challenge", status: 400, ctype: "application/json",
			body: `{"error":"interaction_required","claims":"{\"access_token\":{\"capolids\":{}}}","suberror":"basic_action","error_codes":[50076]}`,
			want: &Error{Code: "interaction_required", AADSTS: []int{50076}, SubError: "basic_action", Claims: `{"access_token":{"capolids":{}}}`,
				HTTPStatus: 400, Endpoint: "token", Hint: aadstsHints[50076]},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tt.ctype}}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			got := DecodeErrorResponse(tt.status, h, []byte(tt.body))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeErrorResponse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := DecodeErrorResponse(401, http.Header{"Content-Type": {"application/json"}}, []byte(msError))
	want := "token endpoint: invalid_client: AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'. [correlation id 8c3c9b0a-aaaa-bbbb-cccc-ddddeeeeffff]"
	if diff := cmp.Diff(want, e.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
	e = &Error{Code: "invalid_scope", AADSTS: []int{70011}, Endpoint: "token"}
	if got := e.Error(); got != "token endpoint: invalid_scope (AADSTS70011)" {
		t.Errorf("Error() = %q", got)
	}
}

// A server that echoes the request (some do, in descriptions or error
// pages) must not make a secret reach an error message.
func TestErrorRedactsSecrets(t *testing.T) {
	secret := "s3cr3t~Value.With+Chars"
	code := "0.AAAA-authorization-code"
	for _, body := range []string{
		`{"error":"invalid_request","error_description":"bad client_secret=` + secret + ` code=` + code + `"}`,
		`<html>echo: client_secret=` + url.QueryEscape(secret) + `&code=` + code + `</html>`,
	} {
		e := decodeError("token", 400, "text/html", []byte(body), []string{secret, code})
		for _, s := range []string{secret, url.QueryEscape(secret), code} {
			if strings.Contains(e.Error(), s) {
				t.Errorf("Error() leaks %q: %s", s, e.Error())
			}
		}
		if !strings.Contains(e.Error(), "[redacted]") {
			t.Errorf("Error() = %s, want [redacted]", e.Error())
		}
	}
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		e    *Error
		want []error
	}{
		{&Error{Code: "invalid_grant", AADSTS: []int{700082}}, []error{ErrReloginRequired}},
		{&Error{Code: "invalid_grant", SubError: "consent_required", AADSTS: []int{65001}}, []error{ErrConsentRequired}},
		{&Error{Code: "interaction_required", AADSTS: []int{50076}}, []error{ErrReloginRequired}},
		{&Error{Code: "authorization_declined"}, []error{ErrAccessDenied}},
		{&Error{Code: "access_denied", AADSTS: []int{65004}}, []error{ErrAccessDenied}},
		{&Error{Code: "expired_token"}, []error{ErrExpired}},
		{&Error{Code: "invalid_client", AADSTS: []int{7000215}}, []error{ErrInvalidClient}},
		{&Error{Code: "invalid_request", HTTPStatus: 429}, []error{ErrThrottled}},
		{&Error{Code: "invalid_grant", AADSTS: []int{50196}}, []error{ErrReloginRequired, ErrThrottled}},
	}
	all := []error{ErrReloginRequired, ErrConsentRequired, ErrAccessDenied, ErrExpired, ErrInvalidClient, ErrThrottled}
	for _, tt := range tests {
		t.Run(tt.e.Error(), func(t *testing.T) {
			var got []error
			for _, s := range all {
				if errors.Is(tt.e, s) {
					got = append(got, s)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("matching sentinels (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHintCatalogue(t *testing.T) {
	// Every row of reference §3.2 has a hint; the ones users ask about
	// most say the fix in their own words.
	for code, want := range map[int]string{
		7000218: "Allow public client flows",
		7000215: "secret's ID instead of its Value",
		50011:   "register this exact redirect URI",
		700016:  "client id",
		65001:   "consent",
		50076:   "interactive",
		700024:  "clock",
		90002:   "tenant",
	} {
		if !strings.Contains(aadstsHints[code], want) {
			t.Errorf("hint for %d = %q, want it to mention %q", code, aadstsHints[code], want)
		}
	}
	for _, code := range []int{7000218, 700025, 7000215, 7000222, 700016, 700027, 50012, 900384, 700024, 50048, 90002, 90038,
		65001, 65004, 650057, 65005, 650056, 500011, 50076, 50079, 50078, 53003, 530035, 70011, 700022, 28002, 28003, 700082,
		700084, 70008, 50173, 54005, 700005, 9002313, 90014, 900144, 50011, 500113, 9002326, 9002327, 50194, 9001023, 90124,
		90130, 9002346, 9002332, 50020, 50034, 16000, 50126, 50053, 50055, 50057, 50058, 50105, 50196, 90055, 501481, 50147,
		501491, 70016, 70018, 70019, 90119, 90120, 700054, 70005, 1002016, 90023, 90100} {
		if aadstsHints[code] == "" {
			t.Errorf("no hint for AADSTS%d", code)
		}
	}
}

func TestErrorFromQuery(t *testing.T) {
	q := url.Values{"error": {"access_denied"}, "error_description": {"AADSTS65004: User declined to consent to access the app.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: x"}, "state": {"s"}}
	e := ErrorFromQuery("authorization", q)
	want := &Error{Endpoint: "authorization", Code: "access_denied", AADSTS: []int{65004}, Description: "AADSTS65004: User declined to consent to access the app.",
		TraceID: "t", CorrelationID: "c", Timestamp: "x", Hint: aadstsHints[65004]}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("ErrorFromQuery (-want +got):\n%s", diff)
	}
	if ErrorFromQuery("authorization", url.Values{"code": {"x"}}) != nil {
		t.Error("a success redirect is not an error")
	}
	e = ErrorFromQuery("authorization", url.Values{"error": {"x\x1b[31mred"}, "error_description": {"line\x07bell"}})
	if strings.ContainsAny(e.Error(), "\x1b\x07") {
		t.Errorf("control characters reach Error(): %q", e.Error())
	}
}

func FuzzDecodeErrorResponse(f *testing.F) {
	f.Add(401, "application/json", []byte(msError))
	f.Add(400, "application/json", []byte(`{"error":"x","error_codes":["12",3.5,-1],"claims":{"a":1}}`))
	f.Add(502, "text/html", []byte("<html><script>x</script>\xff\xfe</html>"))
	f.Add(400, "", []byte(`{"error":"authorization_pending","error_description":"AADSTS70016: pending\r\nTrace ID: \r\n"}`))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		e := decodeError("token", status, ctype, body, []string{"SECRETVALUE"})
		s := e.Error()
		if strings.Contains(s, "SECRETVALUE") {
			t.Fatalf("secret in error: %q", s)
		}
		if strings.ContainsAny(s, "\x1b\r\n") {
			t.Fatalf("control characters in error: %q", s)
		}
		if e.Code == "" && len(e.Description) > maxExcerpt+200 {
			t.Fatalf("excerpt too long: %d", len(e.Description))
		}
	})
}

func TestErrorJSON(t *testing.T) {
	e := &Error{Code: "invalid_client", AADSTS: []int{7000215}, CorrelationID: "c", HTTPStatus: 401, RetryAfter: 30 * time.Second, Hint: "h", Endpoint: "token"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"error":"invalid_client","aadsts":[7000215],"correlation_id":"c","http_status":401,"hint":"h","endpoint":"token","retry_after_seconds":30}`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("JSON (-want +got):\n%s", diff)
	}
}

func TestExcerptWithholdsTokens(t *testing.T) {
	_, p, srv := fakeServer(t, "oidc", func(w http.ResponseWriter, s seen) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.Write([]byte("access_token=gho_SECRETTOKENVALUE&token_type=bearer"))
	})
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid"}
	_, err := c.Refresh(t.Context(), "rt-value", nil)
	if err == nil || strings.Contains(err.Error(), "SECRETTOKENVALUE") || !strings.Contains(err.Error(), "withheld") {
		t.Fatalf("err = %v", err)
	}
}
