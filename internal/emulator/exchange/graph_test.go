package exchange

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type graphReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r graphReply) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r graphReply) errMsg() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// graph sends a request to the Graph listener (path relative to GraphURL
// or a full URL).
func (e *env) graph(method, path, token string, body any, hdr ...string) graphReply {
	e.t.Helper()
	u := path
	if !strings.HasPrefix(path, "https://") {
		u = e.xs.GraphURL + path
	}
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := graphReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func mailJSON(subject string, to ...string) map[string]any {
	var rcpts []map[string]any
	for _, a := range to {
		rcpts = append(rcpts, map[string]any{"emailAddress": map[string]string{"address": a}})
	}
	return map[string]any{"message": map[string]any{
		"subject":      subject,
		"body":         map[string]string{"contentType": "Text", "content": "body of " + subject},
		"toRecipients": rcpts,
	}}
}

func TestGraphSendAndListWithPaging(t *testing.T) {
	e := newEnv(t)
	aliceG := e.userToken(appPublic, alice, graphScope)
	bobG := e.userToken(appPublic, bob, graphScope)
	for i := range 5 {
		r := e.graph("POST", "/me/sendMail", aliceG, mailJSON(fmt.Sprintf("m%d", i), bob))
		if r.status != http.StatusAccepted || r.raw != "" {
			t.Fatalf("sendMail %d: %d %q", i, r.status, r.raw)
		}
	}
	// With an attachment, cc and bcc; no Sent Items copy.
	withAttach := mailJSON("attached", bob)
	m := withAttach["message"].(map[string]any)
	m["ccRecipients"] = []map[string]any{{"emailAddress": map[string]string{"address": shared, "name": "Sales"}}}
	m["bccRecipients"] = []map[string]any{{"emailAddress": map[string]string{"address": "hidden@example.org"}}}
	m["attachments"] = []map[string]any{{"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt",
		"contentType": "text/plain", "contentBytes": base64.StdEncoding.EncodeToString([]byte("attached text"))}}
	withAttach["saveToSentItems"] = false
	if r := e.graph("POST", "/users/alice@contoso.com/sendMail", aliceG, withAttach); r.status != http.StatusAccepted {
		t.Fatalf("sendMail with attachment: %d %s", r.status, r.raw)
	}
	if n := len(e.xs.Messages(alice, "sentitems")); n != 5 {
		t.Errorf("alice sent items: %d, want 5 (saveToSentItems=false honoured)", n)
	}
	if n := len(e.xs.Messages(shared, "inbox")); n != 1 {
		t.Errorf("shared inbox (cc): %d, want 1", n)
	}
	if out := e.xs.Outbound(); len(out) != 1 || out[0].To != "hidden@example.org" || bytes.Contains(out[0].Raw, []byte("hidden@")) {
		t.Errorf("bcc: outbound %+v", out)
	}

	// Bob lists his inbox 2 at a time, following nextLink verbatim.
	next := "/me/mailFolders/inbox/messages?$top=2&$select=subject,hasAttachments,from"
	var subjects []string
	pages := 0
	for next != "" {
		r := e.graph("GET", next, bobG, nil)
		if r.status != 200 {
			t.Fatalf("list: %d %s", r.status, r.raw)
		}
		pages++
		if pages == 1 {
			wantCtx := "https://" + strings.TrimPrefix(strings.TrimSuffix(e.xs.GraphURL, "/v1.0"), "https://") +
				"/v1.0/$metadata#users('"
			if ctx, _ := r.body["@odata.context"].(string); !strings.HasPrefix(ctx, wantCtx) ||
				!strings.HasSuffix(ctx, "/mailFolders('inbox')/messages(subject,hasAttachments,from)") {
				t.Errorf("@odata.context %q", ctx)
			}
		}
		for _, v := range r.body["value"].([]any) {
			msg := v.(map[string]any)
			keys := []string{}
			for k := range msg {
				keys = append(keys, k)
			}
			if len(keys) != 5 { // @odata.etag, id + 3 selected
				t.Errorf("selected keys %v", keys)
			}
			subjects = append(subjects, msg["subject"].(string))
			if msg["subject"] == "attached" && msg["hasAttachments"] != true {
				t.Error("hasAttachments false for the attachment message")
			}
			if from := msg["from"].(map[string]any)["emailAddress"].(map[string]any)["address"]; from != alice {
				t.Errorf("from %v", from)
			}
		}
		next, _ = r.body["@odata.nextLink"].(string)
	}
	if pages != 3 {
		t.Errorf("pages: %d, want 3", pages)
	}
	if d := cmp.Diff([]string{"attached", "m4", "m3", "m2", "m1", "m0"}, subjects); d != "" {
		t.Errorf("subjects newest first (-want +got):\n%s", d)
	}

	// Full message shape and the text body preference.
	r := e.graph("GET", "/users/bob@contoso.com/messages?$top=1", bobG, nil, "Prefer", `outlook.body-content-type="text"`)
	if r.status != 200 || r.header.Get("Preference-Applied") != `outlook.body-content-type="text"` {
		t.Fatalf("list text: %d %v", r.status, r.header)
	}
	msg := r.body["value"].([]any)[0].(map[string]any)
	if body := msg["body"].(map[string]any); body["contentType"] != "text" || body["content"] != "body of attached" {
		t.Errorf("body %v", body)
	}
	for _, k := range []string{"@odata.etag", "id", "receivedDateTime", "bodyPreview", "toRecipients", "ccRecipients", "isRead", "parentFolderId"} {
		if _, ok := msg[k]; !ok {
			t.Errorf("message lacks %s", k)
		}
	}
	if r := e.graph("GET", "/me/messages", bobG, nil); r.status != 200 || len(r.body["value"].([]any)) != 6 {
		t.Errorf("default page: %d", len(r.body["value"].([]any)))
	}
	// The Graph-sent mail reads back over POP3 too.
	p := e.dialTLS(e.xs.POP3Addr)
	p.read()
	p.send("AUTH XOAUTH2 " + xoauth2(bob, e.userToken(appPublic, bob, exoScopes)))
	p.expect(popOK)
	p.send("STAT")
	p.expectPrefix("+OK 6 ")
	p.send("RETR 6")
	if lines := p.readUntil("."); !contains(lines, "Subject: attached") || !contains(lines, `filename=a.txt`) {
		t.Errorf("RETR 6: %q", lines)
	}
}

func TestGraphErrors(t *testing.T) {
	e := newEnv(t)
	aliceG := e.userToken(appPublic, alice, graphScope)
	exoTok := e.userToken(appPublic, alice, exoScopes)
	narrowG := e.userToken(appNarrow, alice, "https://graph.microsoft.com/User.Read")
	noMailG := e.userToken(appPublic, "nomail@contoso.com", graphScope)
	appG := e.appToken(appDaemon, "daemon-secret", "https://graph.microsoft.com/.default")
	expired := e.userToken(appPublic, alice, graphScope)
	_ = e.srv.ExpireToken(expired)
	revoked := e.userToken(appPublic, alice, graphScope)
	_ = e.srv.RevokeToken(revoked)
	send := mailJSON("x", bob)
	tests := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code, msg                 string
	}{
		{"no token", "GET", "/me/messages", "", nil, 401, "InvalidAuthenticationToken", "Access token is empty."},
		{"garbled token", "GET", "/me/messages", "garbage", nil, 401, "InvalidAuthenticationToken", "CompactToken parsing failed with error code: 80049217"},
		{"expired token", "GET", "/me/messages", expired, nil, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."},
		{"revoked token", "GET", "/me/messages", revoked, nil, 401, "InvalidAuthenticationToken", msgTokenRevoked},
		{"exchange token", "GET", "/me/messages", exoTok, nil, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."},
		{"/me with app token", "POST", "/me/sendMail", appG, send, 400, "BadRequest", "/me request is only valid with delegated authentication flow."},
		{"missing Mail.Send", "POST", "/me/sendMail", narrowG, send, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."},
		{"missing Mail.Read", "GET", "/me/messages", narrowG, nil, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."},
		{"other user's mailbox", "GET", "/users/bob@contoso.com/messages", aliceG, nil, 403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."},
		{"no mailbox", "GET", "/me/messages", noMailG, nil, 404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise."},
		{"unknown user", "GET", "/users/nobody@contoso.com/messages", appG, nil, 404, "ErrorInvalidUser", "The requested user 'nobody@contoso.com' is invalid."},
		{"top too large", "GET", "/me/messages?$top=1001", aliceG, nil, 400, "BadRequest", "Invalid value '1001' for $top. $top must be between 1 and 1000."},
		{"unknown select", "GET", "/me/messages?$select=nope", aliceG, nil, 400, "RequestBroker--ParseUri", "Could not find a property named 'nope' on type 'microsoft.graph.message'."},
		{"unknown folder", "GET", "/me/mailFolders/nope/messages", aliceG, nil, 400, "ErrorInvalidIdMalformed", "Id is malformed."},
		{"no recipients", "POST", "/me/sendMail", aliceG, mailJSON("x"), 400, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients."},
		{"bad json", "POST", "/me/sendMail", aliceG, "{", 400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."},
		{"send as bob", "POST", "/me/sendMail", aliceG, map[string]any{"message": map[string]any{
			"from": map[string]any{"emailAddress": map[string]string{"address": bob}}, "toRecipients": []any{map[string]any{"emailAddress": map[string]string{"address": bob}}}}},
			403, "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			r := e.graph(tc.method, tc.path, tc.token, tc.body, "client-request-id", "11111111-2222-4333-8444-555555555555")
			if r.status != tc.status || r.errCode() != tc.code || r.errMsg() != tc.msg {
				t.Fatalf("got %d %s %q, want %d %s %q", r.status, r.errCode(), r.errMsg(), tc.status, tc.code, tc.msg)
			}
			inner := r.body["error"].(map[string]any)["innerError"].(map[string]any)
			if inner["client-request-id"] != "11111111-2222-4333-8444-555555555555" || inner["request-id"] == "" || inner["date"] == "" {
				t.Errorf("innerError %v", inner)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestGraphAppOnlyAndThrottle(t *testing.T) {
	e := newEnv(t)
	appG := e.appToken(appDaemon, "daemon-secret", "https://graph.microsoft.com/.default")
	aliceG := e.userToken(appPublic, alice, graphScope)
	if r := e.graph("POST", "/users/bob@contoso.com/sendMail", appG, mailJSON("from app", alice)); r.status != 202 {
		t.Fatalf("app sendMail as bob: %d %s", r.status, r.raw)
	}
	// A delegated token may name its own user by object id.
	mi, _ := e.srv.Mailbox(alice)
	r := e.graph("GET", "/users/"+mi.ObjectID+"/mailFolders/Inbox/messages", aliceG, nil)
	if r.status != 200 || len(r.body["value"].([]any)) != 1 {
		t.Fatalf("by own object id: %d %s", r.status, r.raw)
	}
	if ctx := r.body["@odata.context"].(string); !strings.Contains(ctx, "users('"+mi.ObjectID+"')/mailFolders('inbox')/messages") {
		t.Errorf("context %q", ctx)
	}
	r = e.graph("GET", "/users/alice@contoso.com/mailFolders/inbox/messages", appG, nil)
	if r.status != 200 || len(r.body["value"].([]any)) != 1 {
		t.Fatalf("app list alice inbox: %d %s", r.status, r.raw)
	}
	// Delegated shared mailbox: FullAccess + Mail.Read.Shared.
	if r := e.graph("GET", "/users/"+shared+"/messages", aliceG, nil); r.status != 200 {
		t.Errorf("shared list: %d %s", r.status, r.raw)
	}
	if r := e.graph("POST", "/users/"+shared+"/sendMail", aliceG, mailJSON("as sales", bob)); r.status != 202 {
		t.Errorf("shared send: %d %s", r.status, r.raw)
	}
	e.xs.SetGraphThrottle(7)
	r = e.graph("GET", "/me/messages", aliceG, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "7" || r.errCode() != "ApplicationThrottled" {
		t.Errorf("throttled: %d %q %s", r.status, r.header.Get("Retry-After"), r.raw)
	}
	e.xs.SetGraphThrottle(0)
	if r := e.graph("GET", "/me/messages", aliceG, nil); r.status != 200 {
		t.Errorf("after throttle off: %d", r.status)
	}
	// MIME sendMail (text/plain base64).
	mime := base64.StdEncoding.EncodeToString([]byte("From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: mime\r\n\r\nhi\r\n"))
	req, _ := http.NewRequest("POST", e.xs.GraphURL+"/me/sendMail", strings.NewReader(mime))
	req.Header.Set("Authorization", "Bearer "+aliceG)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Errorf("MIME sendMail: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("POST", e.xs.GraphURL+"/me/sendMail", strings.NewReader("%%%"))
	req.Header.Set("Authorization", "Bearer "+aliceG)
	req.Header.Set("Content-Type", "text/plain")
	resp, err = e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "ErrorMimeContentInvalidBase64String") {
		t.Errorf("bad MIME: %d %s", resp.StatusCode, b)
	}
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t)
	adm := strings.TrimSuffix(e.xs.GraphURL, "/v1.0") + "/_exchange"
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, adm+path, strings.NewReader(body))
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if st, b := do("POST", "/deliver?mailbox=help@contoso.com", "From: x@example.org\r\nSubject: seeded\r\n\r\nhi\r\n"); st != 204 {
		t.Fatalf("deliver: %d %s", st, b)
	}
	st, b := do("GET", "/messages?mailbox=help@contoso.com&folder=inbox", "")
	var list []MessageSummary
	if err := json.Unmarshal([]byte(b), &list); st != 200 || err != nil || len(list) != 1 || list[0].Subject != "seeded" || list[0].From != "x@example.org" {
		t.Errorf("messages: %d %s", st, b)
	}
	if st, _ := do("GET", "/messages?mailbox=nobody@contoso.com", ""); st != 404 {
		t.Errorf("unknown mailbox: %d", st)
	}
}

func TestGraphUnsupportedQueryOptions(t *testing.T) {
	e := newEnv(t)
	tok := e.userToken(appPublic, alice, graphScope)
	if r := e.graph("GET", "/me/messages?$orderby=receivedDateTime%20desc", tok, nil); r.status != 200 {
		t.Errorf("default $orderby: %d %s", r.status, r.raw)
	}
	if r := e.graph("GET", "/me/messages?$filter=isRead%20eq%20false", tok, nil); r.status != 400 || r.errMsg() != "Query option '$filter' is not supported by the emulator." {
		t.Errorf("$filter: %d %s", r.status, r.raw)
	}
}

// TestGraphIsReadFollowsIMAP marks a message \Seen over IMAP and reads
// isRead over Graph.
func TestGraphIsReadFollowsIMAP(t *testing.T) {
	e := newEnv(t)
	if err := e.xs.Deliver(alice, []byte("From: x@example.org\r\nSubject: unread\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	g := e.userToken(appPublic, alice, graphScope)
	isRead := func() any {
		t.Helper()
		r := e.graph("GET", "/me/messages?$select=isRead", g, nil)
		v := r.body["value"].([]any)
		if len(v) != 1 {
			t.Fatalf("messages: %s", r.raw)
		}
		return v[0].(map[string]any)["isRead"]
	}
	if got := isRead(); got != false {
		t.Fatalf("isRead before: %v", got)
	}
	l := e.dialTLS(e.xs.IMAPAddr)
	l.read()
	l.send("a1 AUTHENTICATE XOAUTH2 " + xoauth2(alice, e.userToken(appPublic, alice, exoScopes)))
	l.expect(imapOK)
	l.send("s1 SELECT INBOX")
	l.readUntilPrefix("s1 OK")
	l.send(`f1 STORE 1 +FLAGS.SILENT (\Seen)`)
	l.readUntilPrefix("f1 OK")
	if got := isRead(); got != true {
		t.Errorf("isRead after IMAP \\Seen: %v", got)
	}
}
