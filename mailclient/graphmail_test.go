package mailclient

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/graph"
)

func TestCheckAndSendGraph(t *testing.T) {
	var sent map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer good":
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure. Invalid audience.","innerError":{"request-id":"rid-1"}}}`)
		case r.Method == "GET" && r.URL.Path == "/v1.0/users/shared@example.test/mailFolders/inbox/messages":
			io.WriteString(w, `{"value":[{"id":"AAMk1","subject":"hello","from":{"emailAddress":{"address":"bob@example.test"}},"internetMessageId":"<x@example.test>"}]}`)
		case r.Method == "POST" && r.URL.Path == "/v1.0/me/sendMail":
			b, _ := io.ReadAll(r.Body)
			json.Unmarshal(b, &sent)
			w.WriteHeader(202)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client := func(tok string) *graph.Client {
		c := graph.New(srv.Client(), graph.StaticToken(tok))
		c.BaseURL = srv.URL + "/v1.0"
		return c
	}

	rep, err := CheckGraph(ctx(t), client("good"), graph.User("shared@example.test"), Options{User: "shared@example.test", Recent: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if diff := cmp.Diff([]Summary{{ID: "AAMk1", Subject: "hello", From: "bob@example.test", MessageID: "x@example.test"}}, rep.Messages); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}

	rep, err = CheckGraph(ctx(t), client("exchange-token"), graph.Me, Options{User: "me"})
	var ge *graph.Error
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v", err)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if last.Reply != "401 Unauthorized: InvalidAuthenticationToken: Access token validation failure. Invalid audience. (request-id rid-1)" ||
		!strings.Contains(last.Hint, "not for Graph") {
		t.Errorf("last step = %+v", last)
	}

	msg := &Message{To: []string{"Bob <bob@example.test>"}, Subject: "s", Body: strings.NewReader("body\n"),
		Attachments: []Attachment{{Name: "a.pdf", Data: []byte("%PDF-1.7")}, {Name: "notes", Data: []byte("plain words\n")}}}
	if rep, err := SendGraph(ctx(t), client("good"), graph.Me, Options{User: "me"}, msg); err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	m := sent["message"].(map[string]any)
	if m["toRecipients"].([]any)[0].(map[string]any)["emailAddress"].(map[string]any)["address"] != "bob@example.test" ||
		m["attachments"].([]any)[0].(map[string]any)["contentType"] != "application/pdf" ||
		m["attachments"].([]any)[1].(map[string]any)["contentType"] != "text/plain; charset=utf-8" ||
		m["body"].(map[string]any)["content"] != "body\n" {
		t.Errorf("sent = %v", sent)
	}
}
