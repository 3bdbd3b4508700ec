package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/mailoauth/mailoauth/provider"
)

// Refresh redeems refreshToken for a new access token for scopes (RFC 6749
// §6). scopes are sent: Microsoft issues a token for the resource of the
// scopes named, so one refresh token yields an Exchange token and, in a
// second call, a Graph token (reference §2.4); nil scopes send none and get
// the originally granted ones.
//
// The returned token always carries a refresh token: the rotated one when
// the server sent one (store it before using the access token), else
// refreshToken itself.
func (c *Client) Refresh(ctx context.Context, refreshToken string, scopes []string) (*Token, error) {
	if refreshToken == "" {
		return nil, fmt.Errorf("refresh: no refresh token: %w", ErrReloginRequired)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	if len(scopes) > 0 {
		form.Set("scope", scopeParam(scopes))
	}
	t, err := c.token(ctx, form, scopes)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

// ClientCredentials gets an app-only token (RFC 6749 §4.4) with the Client's
// secret or certificate. On Microsoft scopes must be exactly one
// "<resource>/.default" (checked before sending); no refresh token is ever
// returned.
func (c *Client) ClientCredentials(ctx context.Context, scopes []string) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.Auth == nil {
		return nil, errors.New("client credentials need a client secret or a certificate")
	}
	if err := c.Provider.ValidateAppOnlyScopes(scopes); err != nil {
		return nil, err
	}
	if c.Provider.Kind == provider.KindMicrosoft && provider.ClassifyTenant(c.Provider.Tenant) == provider.TenantMulti {
		return nil, fmt.Errorf("client credentials need the tenant GUID or domain, not %q: set the account's tenant", c.Provider.Tenant)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", scopeParam(scopes))
	}
	t, err := c.token(ctx, form, scopes)
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	return t, nil
}

// Password uses the resource owner password credentials grant (ROPC, RFC
// 6749 §4.3). Only call it when the account explicitly asks for it: it
// fails for accounts with multi-factor authentication or Conditional Access
// (AADSTS50076/50079/53003), personal Microsoft accounts, federated and
// passwordless users, and it makes the program handle a raw password.
// Microsoft refuses it on the common and consumers tenants.
func (c *Client) Password(ctx context.Context, username, password string, scopes []string) (*Token, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if username == "" || password == "" {
		return nil, errors.New("password grant needs a user name and a password")
	}
	if c.Provider.Kind == provider.KindMicrosoft && (c.Provider.Tenant == provider.TenantCommon || c.Provider.Tenant == provider.TenantConsumers) {
		return nil, fmt.Errorf("the password grant does not work on the %q tenant: set the account's tenant to organizations or the tenant GUID or domain", c.Provider.Tenant)
	}
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	if len(scopes) > 0 {
		form.Set("scope", scopeParam(scopes))
	}
	t, err := c.token(ctx, form, scopes)
	if err != nil {
		return nil, fmt.Errorf("password grant for %s: %w", username, err)
	}
	return t, nil
}
