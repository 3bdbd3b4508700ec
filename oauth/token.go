package oauth

import (
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Token is what a token endpoint granted, in a form that survives storage.
//
// Access tokens are opaque to clients (Microsoft encrypts some of them), so
// nothing here is read out of the token itself: the expiry comes from
// expires_in, measured from the moment the response arrived.
type Token struct {
	AccessToken  string    `json:"access_token"`            // the bearer token for IMAP, POP, SMTP or Graph
	TokenType    string    `json:"token_type,omitempty"`    // always Bearer (others are refused)
	RefreshToken string    `json:"refresh_token,omitempty"` // the newest one: store it before using the access token
	IDToken      string    `json:"id_token,omitempty"`      // OpenID Connect ID token, when openid was asked
	Expiry       time.Time `json:"expiry,omitzero"`         // receipt time + expires_in
	ExtExpiry    time.Time `json:"ext_expiry,omitzero"`     // receipt time + ext_expires_in (Microsoft)
	RefreshAt    time.Time `json:"refresh_at,omitzero"`     // receipt time + refresh_in (Microsoft hint)
	Scope        []string  `json:"scope,omitempty"`         // granted scopes, or the requested ones when the server sent none
}

// Scopes returns the granted scopes as one space-separated string.
func (t *Token) Scopes() string { return strings.Join(t.Scope, " ") }

// OAuth2 converts t to a golang.org/x/oauth2 token, for use with
// oauth2.StaticTokenSource, oauth2.NewClient and the like.
func (t *Token) OAuth2() *oauth2.Token {
	typ := t.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return &oauth2.Token{
		AccessToken:  t.AccessToken,
		TokenType:    typ,
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
	}
}

// String hides the secrets, so a token printed by accident in a log or an
// error leaks nothing.
func (t *Token) String() string {
	return "oauth.Token{expiry: " + t.Expiry.Format(time.RFC3339) + ", scope: " + t.Scopes() + "}"
}
