package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

const tok = "graph-token-123"

type recorded struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]any
}

// fakeGraph is an httptest server recording requests and answering from
// handle.
func fakeGraph(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			json.Unmarshal(b, &rec.Body)
		}
		mu.Lock()
		reqs = append(reqs, rec)
		n := len(reqs)
		mu.Unlock()
		handle(w, r, n)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded { mu.Lock(); defer mu.Unlock(); return append([]recorded(nil), reqs...) }
}

func newClient(srv *httptest.Server) *Client {
	c := New(srv.Client(), StaticToken(tok))
	c.BaseURL = srv.URL + "/v1.0"
	return c
}

func TestSendMail(t *testing.T) {
	srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusAccepted) })
	c := newClient(srv)
	no := false
	msg := &Message{
		Subject: "Report", Body: "hello", To: []string{"bob@example.test"}, Bcc: []string{"hidden@example.test"},
		Attachments:     []Attachment{{Name: "a.txt", ContentType: "text/plain", Data: []byte("hi\n")}},
		SaveToSentItems: &no,
	}
	if err := c.SendMail(t.Context(), Me, msg); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(t.Context(), User("shared box@example.test"), &Message{To: []string{"bob@example.test"}}); err != nil {
		t.Fatal(err)
	}
	got := reqs()
	want := []recorded{
		{Method: "POST", Path: "/v1.0/me/sendMail", Auth: "Bearer " + tok, ContentType: "application/json", Body: map[string]any{
			"message": map[string]any{
				"subject":       "Report",
				"body":          map[string]any{"contentType": "Text", "content": "hello"},
				"toRecipients":  []any{map[string]any{"emailAddress": map[string]any{"address": "bob@example.test"}}},
				"bccRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "hidden@example.test"}}},
				"attachments": []any{map[string]any{
					"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentType": "text/plain", "contentBytes": "aGkK",
				}},
			},
			"saveToSentItems": false,
		}},
		{Method: "POST", Path: "/v1.0/users/shared%20box@example.test/sendMail", Auth: "Bearer " + tok, ContentType: "application/json", Body: map[string]any{
			"message": map[string]any{
				"subject":      "",
				"body":         map[string]any{"contentType": "Text", "content": ""},
				"toRecipients": []any{map[string]any{"emailAddress": map[string]any{"address": "bob@example.test"}}},
			},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		want     Error
		wantHint string
	}{
		{"expired token", 401, `{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired.","innerError":{"date":"2026-11-22T01:00:00","request-id":"11111111-2222-3333-4444-555555555555","client-request-id":"66666666-7777-8888-9999-000000000000"}}}`,
			Error{StatusCode: 401, Code: "InvalidAuthenticationToken", Message: "Lifetime validation failed, the token is expired.", RequestID: "11111111-2222-3333-4444-555555555555", ClientRequestID: "66666666-7777-8888-9999-000000000000", Date: "2026-11-22T01:00:00"},
			"not for Graph"},
		{"app token on /me", 400, `{"error":{"code":"BadRequest","message":"/me request is only valid with delegated authentication flow."}}`,
			Error{StatusCode: 400, Code: "BadRequest", Message: "/me request is only valid with delegated authentication flow."}, "graph.User"},
		{"access denied", 403, `{"error":{"code":"ErrorAccessDenied","message":"Access is denied. Check credentials and try again."}}`,
			Error{StatusCode: 403, Code: "ErrorAccessDenied", Message: "Access is denied. Check credentials and try again."}, "permission"},
		{"no mailbox", 404, `{"error":{"code":"MailboxNotEnabledForRESTAPI","message":"The mailbox is either inactive, soft-deleted, or is hosted on-premise."}}`,
			Error{StatusCode: 404, Code: "MailboxNotEnabledForRESTAPI", Message: "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}, "no Exchange Online mailbox"},
		{"not json", 502, `<html>bad gateway</html>`, Error{StatusCode: 502, Message: "<html>bad gateway</html>"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := fakeGraph(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			err := newClient(srv).SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}})
			var ge *Error
			if !errors.As(err, &ge) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if diff := cmp.Diff(&tt.want, ge); diff != "" {
				t.Errorf("Error (-want +got):\n%s", diff)
			}
			if !strings.Contains(ge.Hint(), tt.wantHint) {
				t.Errorf("Hint = %q, want it to mention %q", ge.Hint(), tt.wantHint)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("token in error: %v", err)
			}
		})
	}
}

func TestListMessagesPaging(t *testing.T) {
	var srvURL string
	srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		switch n {
		case 1:
			// A nextLink with an opaque $skiptoken that must be followed as is.
			fmt.Fprintf(w, `{"@odata.context":"x","value":[{"id":"m1","subject":"one","from":{"emailAddress":{"name":"Bob","address":"bob@example.test"}},"receivedDateTime":"2026-11-02T10:00:00Z","isRead":true},{"id":"m2","subject":"two"}],"@odata.nextLink":"%s/v1.0/users/shared@example.test/mailFolders/inbox/messages?%%24top=2&%%24skiptoken=AbC%%3d%%3d"}`, srvURL)
		case 2:
			io.WriteString(w, `{"value":[{"id":"m3","subject":"three"}]}`)
		}
	})
	srvURL = srv.URL
	got, err := newClient(srv).ListMessages(t.Context(), User("shared@example.test"), ListOptions{Folder: "inbox", Top: 2, Select: []string{"subject", "from"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
	}
	if diff := cmp.Diff([]string{"m1", "m2", "m3"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if got[0].From == nil || got[0].From.EmailAddress.Address != "bob@example.test" || !got[0].IsRead ||
		!got[0].ReceivedDateTime.Equal(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("first message = %+v", got[0])
	}
	r := reqs()
	wantPaths := []string{
		"/v1.0/users/shared@example.test/mailFolders/inbox/messages?%24select=subject%2Cfrom&%24top=2",
		"/v1.0/users/shared@example.test/mailFolders/inbox/messages?%24top=2&%24skiptoken=AbC%3d%3d",
	}
	var gotPaths []string
	for _, q := range r {
		gotPaths = append(gotPaths, q.Path+"?"+q.Query)
	}
	if diff := cmp.Diff(wantPaths, gotPaths); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestListMessagesLimitAndMe(t *testing.T) {
	srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request, n int) {
		io.WriteString(w, `{"value":[{"id":"a"},{"id":"b"},{"id":"c"}],"@odata.nextLink":"http://elsewhere.invalid/next"}`)
	})
	got, err := newClient(srv).ListMessages(t.Context(), Me, ListOptions{Limit: 2})
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d, err %v", len(got), err)
	}
	if r := reqs(); len(r) != 1 || r[0].Path != "/v1.0/me/messages" || r[0].Query != "" {
		t.Errorf("requests = %+v", r)
	}
}

func TestNextLinkToOtherHostRefused(t *testing.T) {
	srv, reqs := fakeGraph(t, func(w http.ResponseWriter, r *http.Request, n int) {
		io.WriteString(w, `{"value":[{"id":"a"}],"@odata.nextLink":"https://attacker.invalid/v1.0/me/messages?page=2"}`)
	})
	got, err := newClient(srv).ListMessages(t.Context(), Me, ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "not sending the token") {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 1 || len(reqs()) != 1 {
		t.Errorf("got %d messages, %d requests", len(got), len(reqs()))
	}
}

// handlerTransport serves requests in memory, so a synctest bubble holds
// every goroutine and its fake clock can jump over Retry-After waits.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		responses []func(w http.ResponseWriter)
		wantWait  time.Duration
		wantCalls int
		wantErr   int // status of the *Error, 0 for success
	}{
		{"429 seconds then 202", []func(http.ResponseWriter){throttle(429, "7"), accepted}, 7 * time.Second, 2, 0},
		{"503 date then 202", []func(http.ResponseWriter){throttle(503, "DATE+30"), throttle(429, "2"), accepted}, 32 * time.Second, 3, 0},
		{"no Retry-After: backoff 1s 2s 4s then give up", []func(http.ResponseWriter){throttle(503, ""), throttle(503, ""), throttle(503, ""), throttle(503, "")}, 7 * time.Second, 4, 503},
		{"Retry-After beyond the cap: no wait", []func(http.ResponseWriter){throttle(429, "3600"), accepted}, 0, 1, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					tt.responses[calls](w)
					calls++
				})
				c := New(&http.Client{Transport: handlerTransport{h}}, StaticToken(tok))
				start := time.Now()
				err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}})
				if waited := time.Since(start); waited != tt.wantWait {
					t.Errorf("waited %v, want %v", waited, tt.wantWait)
				}
				if calls != tt.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
				}
				var ge *Error
				switch {
				case tt.wantErr == 0 && err != nil:
					t.Fatalf("SendMail: %v", err)
				case tt.wantErr != 0 && (!errors.As(err, &ge) || ge.StatusCode != tt.wantErr):
					t.Fatalf("err = %v, want *Error %d", err, tt.wantErr)
				}
			})
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { throttle(429, "30")(w) })
		c := New(&http.Client{Transport: handlerTransport{h}}, StaticToken(tok))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		err := c.SendMail(ctx, Me, &Message{To: []string{"b@example.test"}})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 10*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	})
}

func throttle(status int, retryAfter string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		switch {
		case strings.HasPrefix(retryAfter, "DATE+"):
			var s int
			fmt.Sscanf(retryAfter, "DATE+%d", &s)
			// HTTP dates have whole seconds; the bubble's clock starts on one.
			w.Header().Set("Retry-After", time.Now().Add(time.Duration(s)*time.Second).UTC().Format(http.TimeFormat))
		case retryAfter != "":
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		io.WriteString(w, `{"error":{"code":"TooManyRequests","message":"Please retry again later."}}`)
	}
}

func accepted(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }

func TestTokenSourceError(t *testing.T) {
	c := New(http.DefaultClient, TokenFunc(func(context.Context) (string, error) { return "", errors.New("relogin needed") }))
	c.BaseURL = "http://127.0.0.1:1/v1.0"
	err := c.SendMail(t.Context(), Me, &Message{To: []string{"b@example.test"}})
	if err == nil || !strings.Contains(err.Error(), "relogin needed") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecodeError(f *testing.F) {
	f.Add(401, []byte(`{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty.","innerError":{"request-id":"x"}}}`), "5")
	f.Add(503, []byte(`<html/>`), "Sun, 22 Nov 2026 01:00:00 GMT")
	f.Add(400, []byte(`{"error":"flat"}`), "-1")
	f.Fuzz(func(t *testing.T, status int, body []byte, ra string) {
		h := http.Header{}
		h.Set("Retry-After", ra)
		e := decodeError(status, h, body)
		if len(e.Message) > maxErrorText+len("…") || len(e.Code) > maxErrorText+len("…") || e.RetryAfter < 0 || !utf8.ValidString(e.Message) {
			t.Fatalf("decodeError kept too much or negative wait: %d %d %v", len(e.Message), len(e.Code), e.RetryAfter)
		}
		_ = e.Error()
		_ = e.Hint()
	})
}

func FuzzDecodePage(f *testing.F) {
	f.Add([]byte(`{"value":[{"id":"m1","subject":"s","from":{"emailAddress":{"address":"a@b"}},"receivedDateTime":"2026-11-02T10:00:00Z"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/me/messages?$skip=10"}`))
	f.Add([]byte(`{"value":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePage(data)
		if err == nil && p == nil {
			t.Fatal("nil page without error")
		}
	})
}

// TestMailboxFor checks which path each kind of token and mailbox gets:
// /me only for a user's own mailbox, so a shared mailbox configured as the
// account's address is never read or sent from as the user instead.
func TestMailboxFor(t *testing.T) {
	tests := []struct {
		name                string
		mailbox, signedInAs string
		appOnly             bool
		want                string
	}{
		{"user's own mailbox", "alice@contoso.com", "alice@contoso.com", false, "/me"},
		{"own mailbox, other case", "Alice@Contoso.com", "alice@contoso.com", false, "/me"},
		{"shared mailbox with a user token", "sales@contoso.com", "alice@contoso.com", false, "/users/sales@contoso.com"},
		{"app token", "alice@contoso.com", "", true, "/users/alice@contoso.com"},
		{"signed-in user unknown", "alice@contoso.com", "", false, "/me"},
		{"no mailbox configured", "", "alice@contoso.com", false, "/me"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MailboxFor(tt.mailbox, tt.signedInAs, tt.appOnly).String(); got != tt.want {
				t.Errorf("MailboxFor(%q, %q, %v) = %s, want %s", tt.mailbox, tt.signedInAs, tt.appOnly, got, tt.want)
			}
		})
	}
}
