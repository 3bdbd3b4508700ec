package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mailoauth/mailoauth/provider"
)

// AuthRequest is one authorization code request in progress: the URL to
// open and what its answer is checked against. A web app keeps it (in its
// session) between AuthCodeURL and Exchange.
type AuthRequest struct {
	URL         string   // the authorization URL to open in the browser
	RedirectURI string   // as sent; Exchange must send it again, identical
	State       string   // random, checked on return (RFC 6749 §10.12)
	Verifier    string   // PKCE code_verifier (RFC 7636): secret, sent only to the token endpoint
	Scopes      []string // as requested; Exchange sends the first resource's
	// Issuer, when set, must match an iss parameter in the response
	// (RFC 9207), which defeats mix-up attacks between servers.
	Issuer string
}

// String hides the verifier.
func (a *AuthRequest) String() string {
	return "oauth.AuthRequest{redirect " + a.RedirectURI + ", scope " + scopeParam(a.Scopes) + "}"
}

// AuthOptions tune the authorization URL.
type AuthOptions struct {
	LoginHint  string            // pre-fills the user name
	Prompt     string            // login, consent, select_account, none
	DomainHint string            // Microsoft: skips home-realm discovery
	Extra      map[string]string // any other parameter
}

// AuthCodeURL builds an authorization URL with PKCE S256 (always: RFC 9700
// §2.1.1) and a random state (x/oauth2 does the URL and PKCE parts: they
// are standard and it does them right).
func (c *Client) AuthCodeURL(redirectURI string, scopes []string, o AuthOptions) (*AuthRequest, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.Provider.Endpoints.AuthURL == "" {
		return nil, errors.New("the provider has no authorization endpoint")
	}
	if redirectURI == "" {
		return nil, errors.New("authorization code flow needs a redirect uri")
	}
	ar := &AuthRequest{RedirectURI: redirectURI, State: rand.Text(), Verifier: oauth2.GenerateVerifier(), Scopes: scopes}
	if c.Provider.Kind == provider.KindOIDC {
		// Microsoft's issuer has a {tenantid} placeholder and Google
		// sends no iss: check it only for discovered servers.
		ar.Issuer = c.Provider.Endpoints.Issuer
	}
	conf := &oauth2.Config{ClientID: c.ClientID, Endpoint: oauth2.Endpoint{AuthURL: c.Provider.Endpoints.AuthURL}, RedirectURL: redirectURI, Scopes: scopes}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(ar.Verifier)}
	params := map[string]string{}
	for k, v := range c.Provider.ExtraAuthParams {
		params[k] = v
	}
	for k, v := range o.Extra {
		params[k] = v
	}
	if o.LoginHint != "" {
		params["login_hint"] = o.LoginHint
	}
	if o.Prompt != "" {
		params["prompt"] = o.Prompt
	} else if c.Provider.Kind == provider.KindOIDC && slices.Contains(scopes, "offline_access") {
		// OIDC Core §11: offline_access is ignored unless prompt=consent.
		params["prompt"] = "consent"
	}
	if o.DomainHint != "" {
		params["domain_hint"] = o.DomainHint
	}
	for k, v := range params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	ar.URL = conf.AuthCodeURL(ar.State, opts...)
	return ar, nil
}

// ErrStateMismatch means the redirect's state differs from the request's:
// a stale browser tab, or a forged redirect (CSRF). The code is not used.
var ErrStateMismatch = errors.New("the redirect's state does not match this sign-in: start again (a stale browser tab, or a forged redirect)")

// ParseRedirect reads an authorization response (RFC 6749 §4.1.2): the
// full redirect URL the browser ended on, as pasted by the user, or just its
// query. It checks the state and returns the code, or the *Error carried.
func (a *AuthRequest) ParseRedirect(raw string) (string, error) {
	q, err := RedirectQuery(raw)
	if err != nil {
		return "", err
	}
	return a.CodeFromQuery(q)
}

// CodeFromQuery is ParseRedirect for an already parsed query.
func (a *AuthRequest) CodeFromQuery(q url.Values) (string, error) {
	if !stateEqual(q.Get("state"), a.State) {
		return "", ErrStateMismatch
	}
	if iss := q.Get("iss"); iss != "" && a.Issuer != "" && iss != a.Issuer {
		return "", fmt.Errorf("the redirect comes from issuer %q, not %q: refusing it (RFC 9207 mix-up defence)", sanitize(iss), a.Issuer)
	}
	if e := ErrorFromQuery("authorization", q); e != nil {
		return "", e
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect carries neither a code nor an error")
	}
	return code, nil
}

func stateEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// RedirectQuery extracts the response parameters from what a user pasted:
// a full URL (query, or fragment for response_mode=fragment), "?a=b&c=d" or
// "a=b&c=d". Surrounding spaces, quotes and angle brackets are ignored.
func RedirectQuery(raw string) (url.Values, error) {
	s := strings.Trim(strings.TrimSpace(raw), `"'<>`)
	if s == "" {
		return nil, errors.New("nothing pasted")
	}
	if len(s) > 16<<10 {
		return nil, errors.New("the pasted text is too long for a redirect URL")
	}
	var rawQuery string
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("the pasted text is not a URL: %w", errors.Unwrap(err))
		}
		rawQuery = u.RawQuery
		if rawQuery == "" || !strings.Contains(rawQuery, "=") {
			rawQuery = u.Fragment
		}
	} else {
		rawQuery = strings.TrimPrefix(strings.TrimPrefix(s, "?"), "#")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("the pasted URL's query cannot be parsed: paste the whole address from the browser")
	}
	if q.Get("code") == "" && q.Get("error") == "" && q.Get("admin_consent") == "" && q.Get("tenant") == "" {
		return nil, errors.New("the pasted URL carries no code or error: paste the address the browser shows after signing in")
	}
	return q, nil
}

// Exchange redeems the code of ar (RFC 6749 §4.1.3) with its PKCE verifier
// and the Client's credential, if any. The request's scopes are sent too:
// Microsoft issues a token for one resource only (reference §2.2, §4.4), so
// there only the first resource's scopes are sent, and a token for another
// resource comes from Refresh with that resource's scopes.
func (c *Client) Exchange(ctx context.Context, ar *AuthRequest, code string) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	scopes := ar.Scopes
	if c.Provider.Kind == provider.KindMicrosoft && len(scopes) > 0 {
		scopes = c.Provider.SplitByResource(scopes)[0].Scopes
	}
	if code == "" {
		return nil, errors.New("exchange: empty authorization code")
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {ar.RedirectURI},
		"code_verifier": {ar.Verifier},
	}
	if len(scopes) > 0 {
		form.Set("scope", scopeParam(scopes))
	}
	t, err := c.token(ctx, form, scopes)
	if err != nil {
		return nil, fmt.Errorf("redeem authorization code: %w", err)
	}
	return t, nil
}
