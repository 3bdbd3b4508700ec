// Package provider describes the authorization servers mailoauth talks to:
// their endpoints, the scope strings behind short presets such as "imap" or
// "graph-mail", and the quirks a client must know before sending anything
// (Microsoft issues one resource per token, Google refuses the device flow
// for mail scopes).
//
// Three kinds exist: Microsoft (built from a tenant and a cloud, or an
// authority override for the emulator), Google (fixed endpoints) and any
// OAuth 2.0 / OpenID Connect server found by issuer discovery.
//
//	p, err := provider.Microsoft(provider.MicrosoftOptions{Tenant: "contoso.com"})
//	scopes, err := p.ExpandScopes([]string{"imap", "smtp", "offline_access"}, provider.Delegated)
//	// scopes: https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access
package provider

import (
	"fmt"
	"slices"
)

// Kind names a family of authorization servers whose quirks mailoauth knows.
type Kind string

// The kinds of provider.
const (
	KindMicrosoft Kind = "microsoft"
	KindGoogle    Kind = "google"
	KindOIDC      Kind = "oidc" // any server found by issuer discovery
)

// Endpoints are the URLs and capabilities a client needs from a server's
// metadata (OpenID Connect Discovery 1.0 / RFC 8414 field names in the
// comments).
type Endpoints struct {
	Issuer           string // issuer
	AuthURL          string // authorization_endpoint
	TokenURL         string // token_endpoint
	DeviceAuthURL    string // device_authorization_endpoint
	RevocationURL    string // revocation_endpoint
	IntrospectionURL string // introspection_endpoint
	UserinfoURL      string // userinfo_endpoint
	JWKSURL          string // jwks_uri

	// TokenAuthMethods lists token_endpoint_auth_methods_supported, e.g.
	// client_secret_basic, client_secret_post, private_key_jwt. Empty means
	// the server did not say (RFC 8414 then implies client_secret_basic).
	TokenAuthMethods []string
	// TokenAuthSigningAlgs lists
	// token_endpoint_auth_signing_alg_values_supported, used to pick the
	// client assertion algorithm for non-Microsoft servers.
	TokenAuthSigningAlgs []string
	// CodeChallengeMethods lists code_challenge_methods_supported.
	CodeChallengeMethods []string
	// GrantTypes lists grant_types_supported.
	GrantTypes []string
}

// SupportsAuthMethod reports whether the server advertises the token
// endpoint client authentication method m. A server that advertises
// nothing is assumed to support client_secret_basic only (RFC 8414 §2).
func (e *Endpoints) SupportsAuthMethod(m string) bool {
	if len(e.TokenAuthMethods) == 0 {
		return m == "client_secret_basic"
	}
	return slices.Contains(e.TokenAuthMethods, m)
}

// Provider is one configured authorization server.
type Provider struct {
	Kind      Kind      // which quirks apply
	Endpoints Endpoints // where to send requests and what the server supports

	// Tenant is the Microsoft tenant in the endpoint paths (common,
	// organizations, consumers, a GUID or a domain); empty for others.
	Tenant string
	// Cloud holds the Microsoft national cloud's hosts; nil for others.
	Cloud *Cloud
	// AuthorityBase is the Microsoft login base URL without the tenant,
	// e.g. https://login.microsoftonline.com, or the emulator's URL.
	AuthorityBase string

	// ExtraAuthParams are added to every authorization URL. Google needs
	// access_type=offline to return a refresh token.
	ExtraAuthParams map[string]string
}

// Delegation says whether scopes are for a signed-in user or for the
// application itself (client credentials), which changes how presets expand
// on Microsoft: app-only tokens use "<resource>/.default".
type Delegation int

// The two delegation modes.
const (
	Delegated Delegation = iota // a user signs in: device code, auth code, ROPC, refresh
	AppOnly                     // client credentials
)

// oidcScopes are the OpenID Connect scopes that Microsoft accepts beside
// the scopes of any one resource (reference §4.1).
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// IsOIDCScope reports whether s is one of openid, profile, email or
// offline_access: scopes that belong to no resource.
func IsOIDCScope(s string) bool { return slices.Contains(oidcScopes, s) }

// CheckDeviceFlow returns an error, before any request is sent, when this
// provider is known to refuse the device authorization grant for scopes.
// Google allows the device flow only for a short list of scopes, and none of
// the Gmail ones (reference §7): it would answer invalid_scope anyway, but a
// clear message up front saves the user a confusing round trip.
func (p *Provider) CheckDeviceFlow(scopes []string) error {
	if p.Kind != KindGoogle {
		if p.Endpoints.DeviceAuthURL == "" {
			return fmt.Errorf("%s has no device authorization endpoint: use the authorization code flow", p.describe())
		}
		return nil
	}
	for _, s := range scopes {
		if isGmailScope(s) {
			return fmt.Errorf("google does not allow the device flow for the mail scope %q: use the authorization code flow with a loopback redirect (a \"Desktop app\" client)", s)
		}
	}
	return nil
}

func (p *Provider) describe() string {
	if p.Endpoints.Issuer != "" {
		return "provider " + p.Endpoints.Issuer
	}
	return string(p.Kind) + " provider"
}

// MailServers are the mail hosts of a provider, as host:port.
type MailServers struct {
	IMAP string // implicit TLS
	POP  string // implicit TLS
	SMTP string // submission with STARTTLS
}

// MailServers returns where the provider's mailboxes are reached, or the
// zero value for a generic server (its mail hosts are configured per
// account). Personal Microsoft accounts (tenant consumers) submit mail to
// smtp-mail.outlook.com (reference §5.1).
func (p *Provider) MailServers() MailServers {
	switch p.Kind {
	case KindMicrosoft:
		smtp := p.Cloud.SMTPHost
		if p.Cloud.Name == "global" && (p.Tenant == TenantConsumers || p.Tenant == ConsumersTenantID) {
			smtp = "smtp-mail.outlook.com"
		}
		return MailServers{IMAP: p.Cloud.IMAPHost + ":993", POP: p.Cloud.POPHost + ":995", SMTP: smtp + ":587"}
	case KindGoogle:
		return MailServers{IMAP: "imap.gmail.com:993", POP: "pop.gmail.com:995", SMTP: "smtp.gmail.com:587"}
	}
	return MailServers{}
}
