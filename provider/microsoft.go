package provider

import (
	"fmt"
	"net/url"
	"strings"
)

// Cloud is one Microsoft national cloud: its login host and the hosts of the
// resources mail needs (reference §1.3, §1.4). Tokens from one cloud are not
// accepted in another.
type Cloud struct {
	Name string // global, usgov, usgov-dod, china

	LoginHost      string // authority host
	DeviceLoginURL string // the page users visit to enter a device code

	// GraphURL is the Microsoft Graph resource and base URL.
	GraphURL string
	// ExchangeResource prefixes delegated Exchange scopes
	// (IMAP.AccessAsUser.All, SMTP.Send...).
	ExchangeResource string
	// ExchangeAppResource is the resource of app-only Exchange tokens
	// ("<ExchangeAppResource>/.default").
	ExchangeAppResource string

	IMAPHost string // port 993, implicit TLS
	POPHost  string // port 995, implicit TLS
	SMTPHost string // port 587, STARTTLS
}

// Clouds lists the Microsoft clouds by name. GCC (moderate) tenants use
// "global"; GCC High uses "usgov"; DoD uses "usgov-dod". The DoD and China
// mail hosts come from third-party sources (reference §9).
var Clouds = map[string]Cloud{
	"global": {
		Name: "global", LoginHost: "login.microsoftonline.com", DeviceLoginURL: "https://microsoft.com/devicelogin",
		GraphURL: "https://graph.microsoft.com", ExchangeResource: "https://outlook.office.com", ExchangeAppResource: "https://outlook.office365.com",
		IMAPHost: "outlook.office365.com", POPHost: "outlook.office365.com", SMTPHost: "smtp.office365.com",
	},
	"usgov": {
		Name: "usgov", LoginHost: "login.microsoftonline.us", DeviceLoginURL: "https://microsoft.com/deviceloginus",
		GraphURL: "https://graph.microsoft.us", ExchangeResource: "https://outlook.office365.us", ExchangeAppResource: "https://outlook.office365.us",
		IMAPHost: "outlook.office365.us", POPHost: "outlook.office365.us", SMTPHost: "smtp.office365.us",
	},
	"usgov-dod": {
		Name: "usgov-dod", LoginHost: "login.microsoftonline.us", DeviceLoginURL: "https://microsoft.com/deviceloginus",
		GraphURL: "https://dod-graph.microsoft.us", ExchangeResource: "https://outlook-dod.office365.us", ExchangeAppResource: "https://outlook-dod.office365.us",
		IMAPHost: "outlook-dod.office365.us", POPHost: "outlook-dod.office365.us", SMTPHost: "outlook-dod.office365.us",
	},
	"china": {
		Name: "china", LoginHost: "login.partner.microsoftonline.cn", DeviceLoginURL: "https://microsoft.com/deviceloginchina",
		GraphURL: "https://microsoftgraph.chinacloudapi.cn", ExchangeResource: "https://partner.outlook.cn", ExchangeAppResource: "https://partner.outlook.cn",
		IMAPHost: "partner.outlook.cn", POPHost: "partner.outlook.cn", SMTPHost: "smtp.partner.outlook.cn",
	},
}

// LookupCloud returns the cloud called name; "" means global.
func LookupCloud(name string) (Cloud, error) {
	if name == "" {
		name = "global"
	}
	c, ok := Clouds[strings.ToLower(name)]
	if !ok {
		return Cloud{}, fmt.Errorf("unknown microsoft cloud %q: use global, usgov, usgov-dod or china", name)
	}
	return c, nil
}

// Well-known Microsoft tenant names (reference §1.1).
const (
	TenantCommon        = "common"        // work/school and personal accounts
	TenantOrganizations = "organizations" // work/school accounts only
	TenantConsumers     = "consumers"     // personal accounts only
	// ConsumersTenantID is the GUID equivalent of "consumers".
	ConsumersTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// isGUID and isDomain are written by hand, not as package-level regexps:
// compiling those (the domain one's bounded repetitions expand into a large
// program) cost ~0.18 ms of package init in every mailoauth process, and
// config validation classifies each account's tenant on every `mailoauth
// token` call. They accept exactly what these expressions matched
// (FuzzTenantMatchers checks it):
//
//	GUID:   ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$
//	domain: ^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$

// isGUID reports whether s is a GUID in its 8-4-4-4-12 hex form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// isDomain reports whether s is a DNS name of at least two ASCII labels:
// each label 1 to 63 letters, digits or inner hyphens, the last one 2 to
// 63 letters.
func isDomain(s string) bool {
	last := strings.LastIndexByte(s, '.')
	if last < 0 {
		return false
	}
	tld := s[last+1:]
	if len(tld) < 2 || len(tld) > 63 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !isLetter(tld[i]) {
			return false
		}
	}
	for label := range strings.SplitSeq(s[:last], ".") {
		if len(label) < 1 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isLetter(c) && !isDigit(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isHex(c byte) bool    { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// TenantKind classifies a Microsoft tenant string.
type TenantKind int

// The tenant forms Microsoft accepts in endpoint paths.
const (
	TenantInvalid TenantKind = iota
	TenantMulti              // common, organizations, consumers: no single directory
	TenantGUID
	TenantDomain
)

// ClassifyTenant says which form tenant has.
func ClassifyTenant(tenant string) TenantKind {
	switch strings.ToLower(tenant) {
	case TenantCommon, TenantOrganizations, TenantConsumers:
		return TenantMulti
	}
	if isGUID(tenant) {
		return TenantGUID
	}
	if isDomain(tenant) {
		return TenantDomain
	}
	return TenantInvalid
}

// MicrosoftOptions configure a Microsoft provider.
type MicrosoftOptions struct {
	// Tenant is common (default), organizations, consumers, a tenant GUID
	// or a verified domain such as contoso.onmicrosoft.com.
	Tenant string
	// Cloud is global (default), usgov, usgov-dod or china.
	Cloud string
	// Authority replaces https://<cloud login host> as the base of every
	// endpoint, e.g. the emulator's https://127.0.0.1:8443. The tenant is
	// still appended; a path prefix is kept.
	Authority string
}

// Microsoft builds the provider for a Microsoft Entra tenant. No request is
// made: the v2.0 endpoints follow fixed templates (reference §1.1).
func Microsoft(o MicrosoftOptions) (*Provider, error) {
	cloud, err := LookupCloud(o.Cloud)
	if err != nil {
		return nil, err
	}
	tenant := o.Tenant
	if tenant == "" {
		tenant = TenantCommon
	}
	if ClassifyTenant(tenant) == TenantInvalid {
		return nil, fmt.Errorf("invalid microsoft tenant %q: use common, organizations, consumers, a tenant GUID or a domain such as contoso.onmicrosoft.com", tenant)
	}
	if ClassifyTenant(tenant) == TenantMulti {
		tenant = strings.ToLower(tenant)
	}
	base := "https://" + cloud.LoginHost
	if o.Authority != "" {
		u, err := url.Parse(o.Authority)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("invalid authority %q: want an absolute http(s) URL such as https://127.0.0.1:8443", o.Authority)
		}
		base = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	}
	t := base + "/" + url.PathEscape(tenant)
	return &Provider{
		Kind:          KindMicrosoft,
		Tenant:        tenant,
		Cloud:         &cloud,
		AuthorityBase: base,
		Endpoints: Endpoints{
			Issuer:               t + "/v2.0",
			AuthURL:              t + "/oauth2/v2.0/authorize",
			TokenURL:             t + "/oauth2/v2.0/token",
			DeviceAuthURL:        t + "/oauth2/v2.0/devicecode",
			JWKSURL:              t + "/discovery/v2.0/keys",
			UserinfoURL:          cloud.GraphURL + "/oidc/userinfo",
			TokenAuthMethods:     []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			TokenAuthSigningAlgs: []string{"PS256", "RS256"},
			CodeChallengeMethods: []string{"S256", "plain"},
		},
	}, nil
}

// AdminConsentURL builds the URL an administrator opens to consent to the
// application for the whole tenant (reference §2.7). v2 takes scope
// ("<resource>/.default" for application permissions); v1 consents to the
// statically registered permissions and ignores scope. Microsoft refuses
// admin consent on "common", so this does too, before anyone opens a page.
func (p *Provider) AdminConsentURL(v1 bool, clientID, redirectURI, scope, state string) (string, error) {
	if p.Kind != KindMicrosoft {
		return "", fmt.Errorf("admin consent URLs exist only for microsoft, not %s", p.Kind)
	}
	if p.Tenant == TenantCommon || p.Tenant == TenantConsumers {
		return "", fmt.Errorf("admin consent needs the organization's tenant, not %q: set the account's tenant to the tenant GUID or domain (or organizations)", p.Tenant)
	}
	if clientID == "" || redirectURI == "" {
		return "", fmt.Errorf("admin consent needs a client id and a registered redirect uri")
	}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}}
	if state != "" {
		q.Set("state", state)
	}
	path := "/v2.0/adminconsent"
	if v1 {
		path = "/adminconsent"
	} else {
		if scope == "" {
			return "", fmt.Errorf("v2 admin consent needs a scope, e.g. %s/.default", p.Cloud.ExchangeAppResource)
		}
		q.Set("scope", scope)
	}
	return p.AuthorityBase + "/" + url.PathEscape(p.Tenant) + path + "?" + q.Encode(), nil
}
