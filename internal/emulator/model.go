package emulator

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"time"
)

// Audience values of an app registration's signInAudience.
const (
	AudienceMyOrg        = "AzureADMyOrg"                       // single tenant
	AudienceMultipleOrgs = "AzureADMultipleOrgs"                // any work/school tenant
	AudienceOrgsAndMSA   = "AzureADandPersonalMicrosoftAccount" // work/school + personal
	AudiencePersonalOnly = "PersonalMicrosoftAccount"           // personal accounts only
	ConsumerTenantID     = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// Platform is where a redirect URI is registered; it decides whether a code
// redemption is a public or a confidential client (reference §2.2).
type Platform string

// Redirect URI platforms.
const (
	PlatformWeb    Platform = "web"
	PlatformSPA    Platform = "spa"
	PlatformPublic Platform = "public" // "Mobile and desktop applications"
)

// Tenant is one Entra directory.
type Tenant struct {
	ID       string   // GUID
	Name     string   // display name
	Domains  []string // verified domains, first is the initial *.onmicrosoft.com one
	Cloud    *Cloud
	Consumer bool // the personal-accounts (MSA) tenant
	// UserConsentDisabled is Entra's "User consent for applications: Do not
	// allow": only admins may consent (others get the AADSTS90094 page).
	UserConsentDisabled bool
	// SMTPAuth is the tenant-wide switch (Set-TransportConfig
	// -SmtpClientAuthenticationDisabled is its inverse).
	SMTPAuth bool
	// ExchangeServicePrincipals are the client ids registered in Exchange
	// with New-ServicePrincipal (needed for app-only IMAP/POP/SMTP).
	ExchangeServicePrincipals map[string]bool
	Users                     []*User
}

// User is one account of a tenant.
type User struct {
	ObjectID    string
	UPN         string
	DisplayName string
	Password    string
	MFARequired bool // ROPC gets AADSTS50076
	CABlocked   bool // any sign-in gets AADSTS53003
	Disabled    bool // AADSTS50057
	Admin       bool // may grant tenant-wide admin consent (/adminconsent)
	Mailbox     bool // has an Exchange Online mailbox
	// SMTPAuth is the mailbox override: "" follows the tenant, "enabled" or
	// "disabled" wins over it (Set-CASMailbox -SmtpClientAuthenticationDisabled).
	SMTPAuth string
	// FullAccess lists client ids whose Exchange service principal has
	// FullAccess on this mailbox (Add-MailboxPermission).
	FullAccess map[string]bool
	// FullAccessUsers and SendAsUsers list the UPNs (lower-case) of users
	// with FullAccess (Add-MailboxPermission -User) or SendAs
	// (Add-RecipientPermission) on this mailbox.
	FullAccessUsers map[string]bool
	SendAsUsers     map[string]bool
	// Shared marks a shared mailbox: it has no password and cannot sign in
	// (its account is disabled, as in Exchange Online).
	Shared bool
	// IMAPEnabled and POPEnabled are Set-CASMailbox -ImapEnabled/-PopEnabled.
	IMAPEnabled bool
	POPEnabled  bool
	// TokensValidFrom: refresh tokens issued before it are revoked (50173).
	TokensValidFrom time.Time
	Tenant          *Tenant
}

// SMTPAuthEnabled reports whether SMTP AUTH is on for u's mailbox: the
// mailbox setting wins, else the tenant's.
func (u *User) SMTPAuthEnabled() bool {
	switch u.SMTPAuth {
	case "enabled":
		return true
	case "disabled":
		return false
	}
	return u.Tenant.SMTPAuth
}

// App is one app registration.
type App struct {
	ClientID          string
	Name              string
	HomeTenant        *Tenant
	SignInAudience    string
	AllowPublicClient bool // "Allow public client flows" (isFallbackPublicClient)
	RedirectURIs      map[Platform][]string
	Secrets           []*Secret
	Certificates      []*AppCert
	// Delegated and AppRoles are the registered ("required resource access")
	// permissions per resource app id; .default and admin consent grant these.
	Delegated map[string][]string
	AppRoles  map[string][]string
}

// MultiTenant reports whether the app may be used outside its home tenant.
func (a *App) MultiTenant() bool { return a.SignInAudience != AudienceMyOrg }

// Confidential reports whether the app has any credential.
func (a *App) Confidential() bool { return len(a.Secrets) > 0 || len(a.Certificates) > 0 }

// Secret is one client secret ("Certificates & secrets" → client secrets).
type Secret struct {
	ID      string // the secret ID (a GUID people paste by mistake)
	Value   string
	Expires time.Time // zero: never
}

// AppCert is one certificate credential. Key is set when the emulator
// generated it, so tests and the demo can sign assertions with it.
type AppCert struct {
	Cert     *x509.Certificate
	Key      *rsa.PrivateKey
	SHA1     []byte
	SHA256   []byte
	CertPEM  []byte
	KeyPEM   []byte
	Generate bool
}

func newAppCert(cert *x509.Certificate, key *rsa.PrivateKey) *AppCert {
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	return &AppCert{Cert: cert, Key: key, SHA1: s1[:], SHA256: s256[:]}
}

// Consent is the consent state of one app in one tenant. Its presence means
// the app has a service principal in that tenant.
type Consent struct {
	// AdminDelegated: delegated permissions granted for all users, per
	// resource app id ("Grant admin consent").
	AdminDelegated map[string]map[string]bool
	// AdminRoles: application permissions granted, per resource app id.
	AdminRoles map[string]map[string]bool
	// Users: per-user delegated consents, user object id → resource → perms.
	Users map[string]map[string]map[string]bool
	// ServicePrincipalID is the object id of the enterprise application.
	ServicePrincipalID string
}

func newConsent(spID string) *Consent {
	return &Consent{AdminDelegated: map[string]map[string]bool{}, AdminRoles: map[string]map[string]bool{},
		Users: map[string]map[string]map[string]bool{}, ServicePrincipalID: spID}
}

func addPerm(m map[string]map[string]bool, resource, perm string) {
	if m[resource] == nil {
		m[resource] = map[string]bool{}
	}
	m[resource][strings.ToLower(perm)] = true
}

// Settings are the scenario's global switches; the admin API flips them.
type Settings struct {
	LoopbackCloud      string `toml:"loopback_cloud" json:"loopback_cloud"`             // cloud for 127.0.0.1/localhost Host headers
	ExpiresIn          int    `toml:"expires_in" json:"expires_in"`                     // pinned access-token lifetime; 0 = random 3600–5400
	RefreshIn          int    `toml:"refresh_in" json:"refresh_in"`                     // refresh_in to send; 0 = none
	Throttle           bool   `toml:"throttle" json:"throttle"`                         // every token request gets 429 + Retry-After
	RetryAfter         int    `toml:"retry_after" json:"retry_after"`                   // seconds in Retry-After (default 60)
	LoopDetection      bool   `toml:"loop_detection" json:"loop_detection"`             // user-flow token requests get AADSTS50196
	SlowDown           bool   `toml:"slow_down" json:"slow_down"`                       // device polls faster than interval get slow_down
	DeviceCodeLifetime int    `toml:"device_code_lifetime" json:"device_code_lifetime"` // seconds, default 900
	DeviceCodeInterval int    `toml:"device_code_interval" json:"device_code_interval"` // seconds, default 5
	AuthCodeLifetime   int    `toml:"auth_code_lifetime" json:"auth_code_lifetime"`     // seconds, default 600
	// Mail side (read by internal/emulator/exchange).
	OAuthBearer     bool `toml:"oauthbearer" json:"oauthbearer"`             // mail servers also offer OAUTHBEARER (Gmail-like)
	GraphThrottle   bool `toml:"graph_throttle" json:"graph_throttle"`       // Graph answers 429 + Retry-After
	GraphRetryAfter int  `toml:"graph_retry_after" json:"graph_retry_after"` // seconds, default 60
}

func (s *Settings) fillDefaults() {
	if s.LoopbackCloud == "" {
		s.LoopbackCloud = "global"
	}
	if s.RetryAfter <= 0 {
		s.RetryAfter = 60
	}
	if s.DeviceCodeLifetime <= 0 {
		s.DeviceCodeLifetime = 900
	}
	if s.DeviceCodeInterval <= 0 {
		s.DeviceCodeInterval = 5
	}
	if s.AuthCodeLifetime <= 0 {
		s.AuthCodeLifetime = 600
	}
	if s.GraphRetryAfter <= 0 {
		s.GraphRetryAfter = 60
	}
}

// Model is the directory the emulator serves: tenants, apps, users, consent.
// It is built from a Scenario and changed only under the Emulator's mutex.
type Model struct {
	Settings Settings
	Tenants  []*Tenant
	Apps     []*App
	// Consents: tenant id → client id → consent.
	Consents map[string]map[string]*Consent
	// Demo names the values the demo and tests pick by role.
	Demo DemoValues
}

// DemoValues names the scenario's demo tenant, apps and users, so tests and
// the demo do not hard-code ids.
type DemoValues struct {
	TenantID           string   `json:"tenant_id" toml:"tenant"`
	TenantDomain       string   `json:"tenant_domain" toml:"-"`
	PublicClientID     string   `json:"public_client_id" toml:"public_app"`
	ConfidentialID     string   `json:"confidential_client_id" toml:"confidential_app"`
	ConfidentialSecret string   `json:"confidential_client_secret" toml:"-"`
	Users              []string `json:"users" toml:"users"`
	Passwords          []string `json:"passwords" toml:"-"`
}

func (m *Model) tenantByID(id string) *Tenant {
	for _, t := range m.Tenants {
		if strings.EqualFold(t.ID, id) {
			return t
		}
	}
	return nil
}

func (m *Model) tenantByDomain(d string) *Tenant {
	for _, t := range m.Tenants {
		for _, td := range t.Domains {
			if strings.EqualFold(td, d) {
				return t
			}
		}
	}
	return nil
}

func (m *Model) app(clientID string) *App {
	for _, a := range m.Apps {
		if strings.EqualFold(a.ClientID, clientID) {
			return a
		}
	}
	return nil
}

func (m *Model) userByUPN(upn string) *User {
	for _, t := range m.Tenants {
		for _, u := range t.Users {
			if strings.EqualFold(u.UPN, upn) {
				return u
			}
		}
	}
	return nil
}

func (m *Model) userByOID(oid string) *User {
	for _, t := range m.Tenants {
		for _, u := range t.Users {
			if strings.EqualFold(u.ObjectID, oid) {
				return u
			}
		}
	}
	return nil
}

// consent returns the consent record of app in tenant, creating it (= a
// service principal) when create is set.
func (m *Model) consent(tenantID, clientID string, create bool) *Consent {
	tid, cid := strings.ToLower(tenantID), strings.ToLower(clientID)
	byApp := m.Consents[tid]
	if byApp == nil {
		if !create {
			return nil
		}
		byApp = map[string]*Consent{}
		m.Consents[tid] = byApp
	}
	c := byApp[cid]
	if c == nil && create {
		c = newConsent(derivedGUID("sp", tid, cid))
		byApp[cid] = c
	}
	return c
}

// hasServicePrincipal reports whether app exists in tenant: its home tenant
// always; another tenant once anyone consented there.
func (m *Model) hasServicePrincipal(t *Tenant, a *App) bool {
	if a.HomeTenant == t {
		return true
	}
	return m.consent(t.ID, a.ClientID, false) != nil
}
