package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// TestInvalidate: a refused access token is no longer handed out (its
// record is deleted, the refresh token and state kept), a token someone
// already replaced is left alone, and an unknown resource is an error.
func TestInvalidate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		refused   string
		wantToken string // the access record's token afterwards, "" = deleted
	}{
		{"the refused token", "A", ""},
		{"any token", "", ""},
		{"already replaced", "old", "A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := open(t, "[accounts.ms]\nclient_id = \"x\"\nemail = \"a@contoso.com\"\n")
			a, err := m.Account("ms")
			if err != nil {
				t.Fatal(err)
			}
			login := &oauth.Token{AccessToken: "A", RefreshToken: "R", Expiry: time.Now().Add(time.Hour)}
			if err := tokens.SaveLogin(ctx, m.Store(), "ms", cacheExchange, login); err != nil {
				t.Fatal(err)
			}
			if tok, err := a.Token(ctx, "imap"); err != nil || tok.AccessToken != "A" {
				t.Fatalf("Token before = %v, %v", tok, err)
			}
			if err := a.Invalidate(ctx, "imap", tt.refused); err != nil {
				t.Fatal(err)
			}
			acc, err := tokens.LoadToken(ctx, m.Store(), "ms", tokens.AccessKind(cacheExchange))
			switch {
			case tt.wantToken == "" && !errors.Is(err, tokens.ErrNotFound):
				t.Errorf("access record = %v, %v; want it deleted", acc, err)
			case tt.wantToken != "" && (err != nil || acc.AccessToken != tt.wantToken):
				t.Errorf("access record = %v, %v; want %q kept", acc, err, tt.wantToken)
			}
			rt, err := tokens.LoadToken(ctx, m.Store(), "ms", tokens.KindRefresh)
			if err != nil || rt.RefreshToken != "R" {
				t.Errorf("refresh record = %v, %v; want it kept", rt, err)
			}
			if _, err := m.Store().Get(ctx, "ms", tokens.KindState); err != nil {
				t.Errorf("state record: %v; want it kept (without it a daemon sharing the store takes the account as logged out)", err)
			}
			a.mu.Lock()
			n := len(a.sources)
			a.mu.Unlock()
			if n != 0 {
				t.Errorf("%d cached sources left, want the in-memory copy dropped", n)
			}
		})
	}
	t.Run("unknown resource", func(t *testing.T) {
		m := open(t, "[accounts.ms]\nclient_id = \"x\"\n")
		a, _ := m.Account("ms")
		if err := a.Invalidate(ctx, "carddav", ""); err == nil {
			t.Error("no error")
		}
	})
	t.Run("nothing cached", func(t *testing.T) {
		m := open(t, "[accounts.ms]\nclient_id = \"x\"\n")
		a, _ := m.Account("ms")
		if err := a.Invalidate(ctx, "smtp", ""); err != nil {
			t.Error(err)
		}
	})
}
