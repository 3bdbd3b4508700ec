package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
)

// appTimeout bounds each app registration probe.
const appTimeout = 30 * time.Second

// checkApp is step 3: the app registration, probed without a user and
// without spending anything that matters. A public client asks for a device
// code (which is never shown to anyone and simply expires) and polls once;
// a confidential one gets an app token.
func (r *run) checkApp(ctx context.Context, a *account.Account) {
	cfg := r.acct
	switch {
	case r.identityBroken:
		r.skip(StepApp, "app registration", "not checked: the identity server problem above comes first")
		return
	case r.credsBroken:
		r.skip(StepApp, "app registration", "not checked: the app credential above does not load")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, appTimeout)
	defer cancel()
	c, err := a.Client(ctx)
	if err != nil {
		r.appBroken = true
		r.add(r.explain(StepApp, "app registration", err))
		return
	}
	switch {
	case cfg.Flow == config.FlowClientCredentials:
		r.probeConfidential(ctx, c)
	case cfg.Provider == config.Microsoft:
		r.probePublic(ctx, c)
	default:
		r.skip(StepApp, "app registration", "not probed: only a sign-in tests a "+string(cfg.Provider)+" app for user sign-in (mailoauth login "+cfg.Name+")")
	}
}

// probeConfidential asks for an app token for the account's first
// resource. Whether it carries the mail permissions cannot be read from it
// (access tokens are opaque to clients): the mail step shows that.
func (r *run) probeConfidential(ctx context.Context, c *oauth.Client) {
	scopes, err := c.Provider.ExpandScopes(r.acct.Scopes, provider.AppOnly)
	if err == nil && c.Provider.Kind == provider.KindMicrosoft {
		if groups := c.Provider.SplitByResource(scopes); len(groups) > 0 {
			scopes = slices.DeleteFunc(slices.Clone(groups[0].Scopes), provider.IsOIDCScope)
		}
	}
	if err != nil {
		r.appBroken = true
		r.skip(StepApp, "app credential", "not checked: the scopes above do not expand")
		return
	}
	tok, err := c.ClientCredentials(ctx, scopes)
	if err != nil {
		r.appBroken = true
		r.add(r.explain(StepApp, "app credential", err))
		return
	}
	r.ok(StepApp, "app credential", fmt.Sprintf("the %s is accepted: the identity server issued an app token for %s (whether it carries the mail permissions shows in the mail checks)",
		credKind(r.acct), strings.Join(tok.Scope, " ")))
}

// probePublic requests a device code (checks the client id, the tenant
// and the scopes) and polls once: "authorization_pending" proves that
// public client flows are allowed and no credential is wrongly sent.
func (r *run) probePublic(ctx context.Context, c *oauth.Client) {
	cfg := r.acct
	scopes, err := c.Provider.ExpandScopes(cfg.Scopes, provider.Delegated)
	if err != nil {
		r.appBroken = true
		r.skip(StepApp, "app registration", "not checked: the scopes above do not expand")
		return
	}
	d, err := c.DeviceAuthorize(ctx, scopes)
	if err != nil {
		r.appBroken = true
		r.add(r.explain(StepApp, "app registration", err))
		return
	}
	r.ok(StepApp, "app registration", fmt.Sprintf("app %s is known in tenant %s and accepts the scopes (a device code was issued and is left to expire unused)", cfg.ClientID, cfg.Tenant))
	if cfg.Flow == config.FlowAuthCode {
		if cfg.Confidential() {
			r.probeWebCredential(ctx, c)
			return
		}
		r.ok(StepApp, "public client flows", "not needed for browser sign-in (flow = \"authcode\"); the redirect URI "+cfg.RedirectURI+" must be registered under \"Mobile and desktop applications\"")
		return
	}
	// One poll, as a login's would be sent (with the account's client
	// credential, if any, to catch AADSTS700025).
	_, err = c.DevicePollOnce(ctx, d)
	var oe *oauth.Error
	isOAuth := errors.As(err, &oe)
	switch {
	case err == nil:
		r.ok(StepApp, "public client flows", "allowed")
	case isOAuth && (oe.Code == "authorization_pending" || oe.Code == "slow_down"):
		r.ok(StepApp, "public client flows", "\"Allow public client flows\" is on and no app credential is sent (the poll answered authorization_pending)")
	default:
		r.appBroken = true
		r.add(r.explain(StepApp, "public client flows", err))
	}
}

// probeWebCredential checks the secret or certificate of a web app that
// signs users in (authcode with a credential): a client credentials request
// in its tenant authenticates the app without any user. Only a refused
// credential counts: whether the app may get app tokens is not the point.
func (r *run) probeWebCredential(ctx context.Context, c *oauth.Client) {
	cfg := r.acct
	if provider.ClassifyTenant(cfg.Tenant) == provider.TenantMulti {
		r.skip(StepApp, "app credential", "not probed on tenant "+cfg.Tenant+": only a sign-in tests the "+credKind(cfg)+" there")
		return
	}
	_, err := c.ClientCredentials(ctx, []string{c.Provider.Cloud.GraphURL + "/.default"})
	if err != nil && errors.Is(err, oauth.ErrInvalidClient) {
		r.appBroken = true
		r.add(r.explain(StepApp, "app credential", err))
		return
	}
	r.ok(StepApp, "app credential", "the "+credKind(cfg)+" is accepted by tenant "+cfg.Tenant)
}
