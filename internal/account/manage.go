package account

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
	"github.com/mailoauth/mailoauth/tokens"
)

// Health values of a Status.
const (
	HealthOK        = "ok"         // tokens stored and refreshing
	HealthLoggedOut = "logged-out" // no tokens stored: never logged in, or logged out
	HealthRelogin   = "relogin"    // the refresh token was refused: log in again
	HealthError     = "error"      // the last refresh failed for another reason; retried later
)

// ResourceStatus is one cached access token, without the token.
type ResourceStatus struct {
	Resource string    `json:"resource"`
	Expiry   time.Time `json:"expiry,omitzero"`
	Valid    bool      `json:"valid"`
	// RefreshDue is when the next token request (a mail client's, or the
	// daemon's) refreshes it; up to the engine's jitter earlier.
	RefreshDue time.Time `json:"refresh_due,omitzero"`
}

// Status is what `mailoauth status` reports about an account: facts about
// its tokens, never a token.
type Status struct {
	Account  string `json:"account"`
	Provider string `json:"provider"`
	Flow     string `json:"flow"`
	Email    string `json:"email,omitempty"`
	// LoggedIn: a refresh token (or, for client credentials, an app token)
	// is stored.
	LoggedIn    bool             `json:"logged_in"`
	Health      string           `json:"health"`
	Access      []ResourceStatus `json:"access,omitempty"`
	Scopes      []string         `json:"scopes,omitempty"`
	LastRefresh time.Time        `json:"last_refresh,omitzero"`
	LastError   string           `json:"last_error,omitempty"`
	LastErrorAt time.Time        `json:"last_error_at,omitzero"`
	RetryAfter  time.Time        `json:"retry_after,omitzero"`
	// NextAction is what the user should do, "" when nothing.
	NextAction string `json:"next_action,omitempty"`
}

// Status reads the account's records from the store; no network.
func (a *Account) Status(ctx context.Context) (Status, error) {
	st := Status{Account: a.cfg.Name, Provider: string(a.cfg.Provider), Flow: string(a.cfg.Flow)}
	info, err := tokens.Inspect(ctx, a.m.store, a.cfg.Name)
	if err != nil {
		return st, fmt.Errorf("status of %s: %w", a.cfg.Name, err)
	}
	now := time.Now()
	if a.m.opts.Now != nil {
		now = a.m.opts.Now()
	}
	for res, exp := range info.Access {
		st.Access = append(st.Access, ResourceStatus{Resource: res, Expiry: exp, Valid: exp.IsZero() || now.Before(exp), RefreshDue: info.RefreshDue[res]})
	}
	slices.SortFunc(st.Access, func(x, y ResourceStatus) int { return strings.Compare(x.Resource, y.Resource) })
	st.Scopes = info.Scope
	st.LastRefresh = info.State.LastRefresh
	st.LastError, st.LastErrorAt, st.RetryAfter = info.State.LastError, info.State.LastErrorAt, info.State.RetryAfter
	st.LoggedIn = info.HasRefreshToken || (a.AppOnly() && len(info.Access) > 0)
	st.Email = a.Email()
	switch {
	case info.State.ReloginRequired:
		st.Health = HealthRelogin
		st.NextAction = "run: " + tokens.LoginCommand(a.cfg.Name)
		if info.State.Command != "" {
			st.NextAction = "run: " + info.State.Command
		}
	case !st.LoggedIn:
		st.Health = HealthLoggedOut
		st.NextAction = "run: " + tokens.LoginCommand(a.cfg.Name)
	case info.State.LastError != "":
		st.Health = HealthError
		st.NextAction = "none: the refresh is retried automatically; if it keeps failing, run mailoauth token " + a.cfg.Name + " -v"
	default:
		st.Health = HealthOK
	}
	return st, nil
}

// LogoutResult says what Logout did.
type LogoutResult struct {
	Account string `json:"account"`
	// Forgot: tokens were stored and are deleted now.
	Forgot bool `json:"forgot"`
	// Revoked: the provider's revocation endpoint (RFC 7009) accepted the
	// refresh token. Microsoft has none for refresh tokens: there a user
	// revokes sessions in the account portal.
	Revoked bool `json:"revoked"`
	// RevokeError is why revocation failed; the tokens are forgotten anyway.
	RevokeError string `json:"revoke_error,omitempty"`
}

// Logout forgets the account's tokens, after revoking the refresh token
// where the provider has a revocation endpoint (Google, OIDC servers that
// advertise one). A failed revocation does not keep the tokens: the user
// asked to forget them.
func (a *Account) Logout(ctx context.Context) (*LogoutResult, error) {
	res := &LogoutResult{Account: a.cfg.Name}
	recs, err := a.m.store.Records(ctx, a.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("logout %s: %w", a.cfg.Name, err)
	}
	res.Forgot = len(recs) > 0
	if rt, err := tokens.LoadToken(ctx, a.m.store, a.cfg.Name, tokens.KindRefresh); err == nil && rt.RefreshToken != "" {
		if c, err := a.Client(ctx); err != nil {
			res.RevokeError = err.Error()
		} else if c.Provider.Endpoints.RevocationURL != "" {
			if err := revoke(ctx, c, rt.RefreshToken); err != nil {
				res.RevokeError = err.Error()
			} else {
				res.Revoked = true
			}
		}
	}
	if err := a.m.store.Delete(ctx, a.cfg.Name); err != nil {
		return nil, fmt.Errorf("logout %s: %w", a.cfg.Name, err)
	}
	a.mu.Lock()
	a.sources = map[string]*tokens.Source{}
	a.email = ""
	a.mu.Unlock()
	return res, nil
}

// revoke posts an RFC 7009 revocation request. Written here because the
// oauth package has no revocation call and x/oauth2 has none either; it is
// one form post.
func revoke(ctx context.Context, c *oauth.Client, token string) error {
	ep := c.Provider.Endpoints.RevocationURL
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	hdr := http.Header{}
	if c.Auth != nil {
		if err := c.Auth.Authenticate(ctx, oauth.ClientAuthRequest{ClientID: c.ClientID, TokenURL: c.Provider.Endpoints.TokenURL,
			Endpoint: ep, Provider: c.Provider, Form: form, Header: hdr, Now: c.Now}); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	} else {
		form.Set("client_id", c.ClientID) // public clients identify themselves (RFC 7009 §2.1)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	// RFC 7009 §2.2: 200 whether or not the token was valid. Google answers
	// 400 invalid_token for one already revoked: gone either way.
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := oauth.DecodeErrorResponse(resp.StatusCode, resp.Header, body, token)
	if e.Code == "invalid_token" {
		return nil
	}
	return fmt.Errorf("revoke: %w", e)
}

// ErrMultiTenant is returned by admin consent for an account whose tenant
// is common or consumers: consent is per organization, and Microsoft refuses
// both there. organizations is allowed (reference §1.1): the tenant that
// consents is then the administrator's own.
var ErrMultiTenant = errors.New("admin consent needs the tenant's GUID or domain (or organizations), not common or consumers")

// consentScope is the v2 admin consent scope of the account: Exchange's
// "/.default" when its scopes name any Exchange protocol, else Graph's.
func (a *Account) consentScope(c *oauth.Client) string {
	cl := c.Provider.Cloud
	if cl == nil {
		return ""
	}
	all, err := a.scopes(c.Provider)
	if err == nil {
		for _, g := range c.Provider.SplitByResource(all) {
			if keyOf(c.Provider, g.Resource) == cacheExchange {
				return cl.ExchangeAppResource + "/.default"
			}
		}
		if len(all) > 0 {
			return cl.GraphURL + "/.default"
		}
	}
	return cl.ExchangeAppResource + "/.default"
}

// checkConsent refuses accounts admin consent cannot work for.
func (a *Account) checkConsent() error {
	if a.cfg.Provider != config.Microsoft {
		return fmt.Errorf("account %s: admin consent is a Microsoft Entra feature; %s has none", a.cfg.Name, a.cfg.Provider)
	}
	switch strings.ToLower(a.cfg.Tenant) {
	case "", provider.TenantCommon, provider.TenantConsumers, provider.ConsumersTenantID:
		return fmt.Errorf("account %s: %w (tenant = %q); set tenant to the customer's tenant id or domain", a.cfg.Name, ErrMultiTenant, a.cfg.Tenant)
	}
	return nil
}

// AdminConsentURL returns the URL an administrator opens (on any machine)
// to consent for the account's tenant, and the redirect it ends on.
func (a *Account) AdminConsentURL(ctx context.Context, v1 bool) (consentURL string, err error) {
	if err := a.checkConsent(); err != nil {
		return "", err
	}
	c, err := a.Client(ctx)
	if err != nil {
		return "", err
	}
	u, _, err := c.AdminConsentURL(a.cfg.RedirectURI, a.consentScope(c), v1)
	return u, err
}

// AdminConsent runs admin consent for the account's tenant on the loopback
// redirect: the browser (or a pasted URL) brings back the consented tenant
// and scope, or the error.
func (a *Account) AdminConsent(ctx context.Context, v1 bool, it oauth.Interaction) (*oauth.AdminConsentResult, error) {
	if err := a.checkConsent(); err != nil {
		return nil, err
	}
	c, err := a.Client(ctx)
	if err != nil {
		return nil, err
	}
	o := oauth.AdminConsentOptions{RedirectURI: a.cfg.RedirectURI, V1: v1, Interaction: it}
	if !v1 {
		o.Scope = a.consentScope(c)
	}
	return c.AdminConsent(ctx, o)
}

// emailFromIDToken reads the mailbox name from an ID token's claims
// (preferred_username, email, upn). The token came straight from the token
// endpoint over TLS (OIDC Core §3.1.3.7 allows skipping the signature
// check then), and the value is only a default for the SASL user name.
func emailFromIDToken(idToken string) string {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
		UPN               string `json:"upn"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	for _, s := range []string{claims.Email, claims.PreferredUsername, claims.UPN} {
		if strings.Contains(s, "@") && !strings.ContainsAny(s, " \r\n\t\x00") && len(s) <= 320 {
			return s
		}
	}
	return ""
}

// NextRefresh is when the refresh engine of resource ("imap", "graph"…)
// refreshes the token it holds, jitter included; zero before the account's
// first Token call for it. The daemon sleeps until then.
func (a *Account) NextRefresh(resource string) time.Time {
	key, err := a.cacheKey(resource)
	if err != nil {
		return time.Time{}
	}
	a.mu.Lock()
	s := a.sources[key]
	a.mu.Unlock()
	if s == nil {
		return time.Time{}
	}
	return s.NextRefresh()
}
