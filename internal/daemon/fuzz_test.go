package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// FuzzDecodeReply: whatever a daemon answers, the client neither panics
// nor mistakes an error for a token, and a relogin answer always matches
// tokens.ErrReloginRequired.
func FuzzDecodeReply(f *testing.F) {
	f.Add(200, `{"access_token":"at","token_type":"Bearer","expiry":"2030-01-01T00:00:00Z","user":"a@b.c"}`)
	f.Add(401, `{"error":"relogin_required","message":"m","account":"work","reason":"invalid_grant","command":"mailoauth login work"}`)
	f.Add(404, `{"error":"unknown_account","message":"no such account"}`)
	f.Add(409, `{"error":"other_config","message":"the daemon serves x"}`)
	f.Add(502, `not json`)
	f.Add(200, `{"access_token":`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		var rep TokenReply
		err := decodeReply(status, []byte(body), &rep)
		if status != http.StatusOK && err == nil {
			t.Fatalf("HTTP %d decoded without error", status)
		}
		var er ErrorReply
		if status != http.StatusOK && json.Unmarshal([]byte(body), &er) == nil && er.Error == CodeReloginRequired &&
			!errors.Is(err, tokens.ErrReloginRequired) {
			t.Fatalf("relogin reply gave %v", err)
		}
	})
}

// FuzzServeToken: any query string gets a JSON answer with a known status
// and never a panic.
func FuzzServeToken(f *testing.F) {
	f.Add("account=work&resource=imap")
	f.Add("account=&resource=")
	f.Add("account=%00&resource=graph&config=%2Fx")
	f.Add("account=nobody")
	f.Add(";;&&==%zz")
	d, err := New(Options{Socket: "/nonexistent/d.sock", ConfigFile: "/etc/config.toml", Logger: testLogger(f)})
	if err != nil {
		f.Fatal(err)
	}
	h := d.handler(staticAccounts{})
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/token", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 404, 409, 502, 503:
		default:
			t.Fatalf("status %d for %q", rec.Code, query)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
	})
}

// staticAccounts knows one account, "work", with a fixed token for
// "imap", a relogin error for "graph" and a failure for anything else.
type staticAccounts struct{}

func (staticAccounts) Names() []string { return []string{"work"} }

func (staticAccounts) Resources(context.Context, string) ([]string, error) { return nil, nil }

func (staticAccounts) Token(_ context.Context, account, resource string) (*oauth.Token, time.Time, error) {
	switch {
	case account != "work":
		return nil, time.Time{}, fmt.Errorf("%w: %q", config.ErrNoAccount, account)
	case resource == "imap":
		return &oauth.Token{AccessToken: "at", Expiry: time.Now().Add(time.Hour)}, time.Now().Add(55 * time.Minute), nil
	case resource == "graph":
		return nil, time.Time{}, &tokens.ReloginError{Account: account, Reason: "invalid_grant", Command: tokens.LoginCommand(account)}
	}
	return nil, time.Time{}, errors.New("unknown resource")
}

func (staticAccounts) User(string) string { return "" }

func (staticAccounts) Status(context.Context, string) (any, error) { return nil, nil }
