package tokens_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

func Example() {
	ctx := context.Background()
	store, err := tokens.Open(ctx, "mem:", nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()

	// What a login returned: the access token has expired since.
	login := &oauth.Token{AccessToken: "old", RefreshToken: "rt-1", Expiry: time.Now().Add(-time.Minute)}
	if err := tokens.SaveLogin(ctx, store, "work", "imap", login); err != nil {
		panic(err)
	}

	// A stand-in for the token endpoint, rotating the refresh token.
	refresher := tokens.RefresherFunc(func(ctx context.Context, rt string, scopes []string) (*oauth.Token, error) {
		return &oauth.Token{AccessToken: "fresh", RefreshToken: "rt-2", Expiry: time.Now().Add(time.Hour)}, nil
	})
	src, err := tokens.NewSource(tokens.Config{Store: store, Refresher: refresher, Account: "work", Resource: "imap"})
	if err != nil {
		panic(err)
	}
	tok, err := src.TokenContext(ctx)
	if err != nil {
		panic(err)
	}
	saved, _ := tokens.LoadToken(ctx, store, "work", tokens.KindRefresh)
	fmt.Println(tok.AccessToken, saved.RefreshToken)
	// Output: fresh rt-2
}
