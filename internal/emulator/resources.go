package emulator

import (
	"net"
	"strings"
)

// Cloud is one Microsoft national cloud as the emulator models it (reference
// §1.3, §1.4). The emulator picks the cloud of a request from its Host header,
// so a client that dials loopback for a real login host gets that cloud.
type Cloud struct {
	Name           string   // global | usgov | usgov-dod | china
	LoginHost      string   // canonical authority host
	Aliases        []string // other authority hosts MSAL accepts for this cloud
	DeviceLoginURL string   // what Microsoft returns as verification_uri (informational)
	InstanceName   string   // cloud_instance_name in discovery
	GraphHost      string   // msgraph_host and the Graph resource host
	ExchangeHosts  []string // Exchange Online resource identifier hosts
	IMAPHost       string   // IMAP/POP host of the cloud (for later mail listeners)
	SMTPHost       string   // SMTP submission host of the cloud
}

// loginFamily names the login host family: usgov and usgov-dod share one
// authority host, so a request's Host cannot tell them apart.
func (c *Cloud) loginFamily() string {
	if c.Name == "usgov-dod" {
		return "usgov"
	}
	return c.Name
}

// Clouds lists every cloud the emulator knows, by name.
var Clouds = map[string]*Cloud{
	"global": {
		Name: "global", LoginHost: "login.microsoftonline.com",
		Aliases:        []string{"login.windows.net", "login.microsoft.com", "sts.windows.net"},
		DeviceLoginURL: "https://microsoft.com/devicelogin", InstanceName: "microsoftonline.com",
		GraphHost:     "graph.microsoft.com",
		ExchangeHosts: []string{"outlook.office.com", "outlook.office365.com", "ps.outlook.com"},
		IMAPHost:      "outlook.office365.com", SMTPHost: "smtp.office365.com",
	},
	"usgov": {
		Name: "usgov", LoginHost: "login.microsoftonline.us",
		Aliases:        []string{"login.usgovcloudapi.net", "login-us.microsoftonline.com"},
		DeviceLoginURL: "https://microsoft.com/deviceloginus", InstanceName: "microsoftonline.us",
		GraphHost:     "graph.microsoft.us",
		ExchangeHosts: []string{"outlook.office365.us"},
		IMAPHost:      "outlook.office365.us", SMTPHost: "smtp.office365.us",
	},
	"usgov-dod": {
		Name: "usgov-dod", LoginHost: "login.microsoftonline.us",
		Aliases:        []string{"login.usgovcloudapi.net", "login-us.microsoftonline.com"},
		DeviceLoginURL: "https://microsoft.com/deviceloginus", InstanceName: "microsoftonline.us",
		GraphHost:     "dod-graph.microsoft.us",
		ExchangeHosts: []string{"outlook-dod.office365.us"},
		IMAPHost:      "outlook-dod.office365.us", SMTPHost: "outlook-dod.office365.us",
	},
	"china": {
		Name: "china", LoginHost: "login.partner.microsoftonline.cn",
		Aliases:        []string{"login.chinacloudapi.cn"},
		DeviceLoginURL: "https://microsoft.com/deviceloginchina", InstanceName: "partner.microsoftonline.cn",
		GraphHost:     "microsoftgraph.chinacloudapi.cn",
		ExchangeHosts: []string{"partner.outlook.cn"},
		IMAPHost:      "partner.outlook.cn", SMTPHost: "smtp.partner.outlook.cn",
	},
}

// cloudForHost returns the cloud whose authority host (or alias) is host, or
// nil for any other host (loopback, unknown names).
func cloudForHost(host string) *Cloud {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, name := range []string{"global", "usgov", "china"} {
		c := Clouds[name]
		if host == c.LoginHost {
			return c
		}
		for _, a := range c.Aliases {
			if host == a {
				return c
			}
		}
	}
	return nil
}

// TLSHostNames lists every host name the emulator's server certificate
// carries, so clients that dial loopback for the real names verify it: login
// hosts and aliases of every cloud, and the mail and Graph hosts the later mail
// listeners answer for.
func TLSHostNames() []string {
	seen := map[string]bool{"localhost": true}
	out := []string{"localhost"}
	add := func(h string) {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, name := range []string{"global", "usgov", "usgov-dod", "china"} {
		c := Clouds[name]
		add(c.LoginHost)
		for _, a := range c.Aliases {
			add(a)
		}
		add(c.GraphHost)
		for _, h := range c.ExchangeHosts {
			add(h)
		}
		add(c.IMAPHost)
		add(c.SMTPHost)
	}
	add("smtp-mail.outlook.com")
	add("microsoft.com")
	return out
}

// Resource is a first-party API that tokens can be issued for.
type Resource struct {
	AppID string // application id of the resource
	Name  string // display name, as in the portal
	// Delegated lists the delegated permission names (scopes) the resource
	// defines; AppRoles the application permission names.
	Delegated []string
	AppRoles  []string
	graph     bool
}

// Well-known resource application ids (reference §1.4).
const (
	ExchangeAppID = "00000002-0000-0ff1-ce00-000000000000"
	GraphAppID    = "00000003-0000-0000-c000-000000000000"
)

// Resources are the APIs the emulator knows. Only these two matter for mail.
var Resources = []*Resource{
	{
		AppID: ExchangeAppID, Name: "Office 365 Exchange Online",
		Delegated: []string{"IMAP.AccessAsUser.All", "POP.AccessAsUser.All", "SMTP.Send", "EWS.AccessAsUser.All",
			"Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read"},
		AppRoles: []string{"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "full_access_as_app",
			"Mail.Read", "Mail.ReadWrite", "Mail.Send"},
	},
	{
		AppID: GraphAppID, Name: "Microsoft Graph", graph: true,
		Delegated: []string{"User.Read", "User.ReadBasic.All", "Mail.Read", "Mail.ReadBasic", "Mail.ReadWrite",
			"Mail.Send", "Mail.Send.Shared", "Mail.Read.Shared", "Mail.ReadWrite.Shared", "MailboxSettings.Read",
			"openid", "profile", "email", "offline_access"},
		AppRoles: []string{"Mail.Read", "Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.ReadWrite", "Mail.Send",
			"User.Read.All", "MailboxSettings.Read"},
	},
}

func resourceByAppID(id string) *Resource {
	for _, r := range Resources {
		if strings.EqualFold(r.AppID, id) {
			return r
		}
	}
	return nil
}

// identifierHosts returns the resource identifier hosts of r in cloud c.
func (r *Resource) identifierHosts(c *Cloud) []string {
	if r.graph {
		return []string{c.GraphHost}
	}
	return c.ExchangeHosts
}

// DefaultIdentifier is the identifier the emulator prints for r in cloud c
// (Graph host, or the app-only Exchange identifier).
func (r *Resource) DefaultIdentifier(c *Cloud) string {
	if r.graph {
		return "https://" + c.GraphHost
	}
	if c.Name == "global" {
		return "https://outlook.office365.com"
	}
	return "https://" + c.ExchangeHosts[0]
}

func containsFold(list []string, s string) (string, bool) {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return v, true
		}
	}
	return "", false
}

// resolveResource finds the resource an identifier (https://host, host with a
// path, or the resource app id) names. It returns (nil, otherCloud) when the
// identifier names a known resource of another cloud.
func resolveResource(c *Cloud, identifier string) (res *Resource, otherCloud bool) {
	id := strings.TrimRight(identifier, "/")
	if r := resourceByAppID(id); r != nil {
		return r, false
	}
	low := strings.ToLower(id)
	host := strings.TrimPrefix(low, "https://")
	if host == low { // identifiers of these resources are https URLs
		return nil, false
	}
	for _, r := range Resources {
		for _, h := range r.identifierHosts(c) {
			if host == h {
				return r, false
			}
		}
	}
	for _, other := range Clouds {
		for _, r := range Resources {
			for _, h := range r.identifierHosts(other) {
				if host == h {
					return nil, true
				}
			}
		}
	}
	return nil, false
}
