package provider

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Presets lists the short scope names every provider understands, and what
// they stand for. Full scope strings (anything else) pass through unchanged.
//
//	imap             read mail over IMAP
//	pop              read mail over POP3
//	smtp             send mail over SMTP AUTH
//	ews              Exchange Web Services (Microsoft only)
//	graph-mail       Graph: read and send mail (Mail.ReadWrite + Mail.Send)
//	graph-mail-read  Graph: read mail (Mail.Read)
//	graph-mail-send  Graph: send mail (Mail.Send)
//	offline_access   ask for a refresh token
//
// On Microsoft, app-only (client credentials) presets become the resource's
// "/.default": imap, pop, smtp, ews → https://outlook.office365.com/.default,
// graph-* → https://graph.microsoft.com/.default (national clouds use their
// own hosts). On Google imap, pop and smtp all become https://mail.google.com/
// and offline_access becomes access_type=offline on the authorization URL.
var Presets = []string{"imap", "pop", "smtp", "ews", "graph-mail", "graph-mail-read", "graph-mail-send", "offline_access"}

// ExpandScopes turns presets and full scope strings into the scope list to
// request, without duplicates, in first-seen order.
func (p *Provider) ExpandScopes(names []string, d Delegation) ([]string, error) {
	var out []string
	add := func(ss ...string) {
		for _, s := range ss {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	for _, n := range names {
		for _, f := range strings.Fields(n) {
			ss, err := p.expandOne(f, d)
			if err != nil {
				return nil, err
			}
			add(ss...)
		}
	}
	return out, nil
}

func (p *Provider) expandOne(name string, d Delegation) ([]string, error) {
	if !slices.Contains(Presets, name) {
		return []string{name}, nil
	}
	switch p.Kind {
	case KindMicrosoft:
		c := p.Cloud
		if d == AppOnly {
			switch name {
			case "imap", "pop", "smtp", "ews":
				return []string{c.ExchangeAppResource + "/.default"}, nil
			case "offline_access":
				return nil, nil // client credentials never return a refresh token
			default:
				return []string{c.GraphURL + "/.default"}, nil
			}
		}
		ex, g := c.ExchangeResource+"/", c.GraphURL+"/"
		switch name {
		case "imap":
			return []string{ex + "IMAP.AccessAsUser.All"}, nil
		case "pop":
			return []string{ex + "POP.AccessAsUser.All"}, nil
		case "smtp":
			// SMTP.Send, not SMTP.SendAsApp: the newer Exchange doc's
			// delegated table is wrong (reference §9).
			return []string{ex + "SMTP.Send"}, nil
		case "ews":
			return []string{ex + "EWS.AccessAsUser.All"}, nil
		case "graph-mail":
			return []string{g + "Mail.ReadWrite", g + "Mail.Send"}, nil
		case "graph-mail-read":
			return []string{g + "Mail.Read"}, nil
		case "graph-mail-send":
			return []string{g + "Mail.Send"}, nil
		case "offline_access":
			return []string{"offline_access"}, nil
		}
	case KindGoogle:
		switch name {
		case "imap", "pop", "smtp":
			return []string{GoogleMailScope}, nil
		case "offline_access":
			// Google has no such scope: the refresh token comes from
			// access_type=offline, which Google's provider always sets.
			return nil, nil
		default:
			return nil, fmt.Errorf("scope preset %q does not exist for google: use imap, pop, smtp or a full scope string", name)
		}
	default:
		if name == "offline_access" {
			return []string{"offline_access"}, nil
		}
		return nil, fmt.Errorf("scope preset %q has no meaning for a generic OAuth server: give the full scope string your server expects", name)
	}
	return nil, fmt.Errorf("unknown scope preset %q", name)
}

// ResourceScopes is one token request's worth of scopes: all from one
// resource, plus the OIDC scopes.
type ResourceScopes struct {
	Resource string   // e.g. https://outlook.office.com; "" when the provider has no resources
	Scopes   []string // includes the OIDC scopes requested alongside
}

// SplitByResource groups scopes by the resource they belong to, because a
// Microsoft token request (code redemption, refresh, device poll, client
// credentials) returns a token for one resource only (reference §4.4): the
// authorization request may list them all, then one refresh per resource
// yields an Exchange token and a Graph token. OIDC scopes (openid, profile,
// email, offline_access) are added to every group. Un-prefixed Microsoft
// scopes such as Mail.Read belong to Microsoft Graph. Other providers have
// one group holding everything.
func (p *Provider) SplitByResource(scopes []string) []ResourceScopes {
	if p.Kind != KindMicrosoft {
		return []ResourceScopes{{Scopes: slices.Clone(scopes)}}
	}
	var oidc []string
	var groups []ResourceScopes
	for _, s := range scopes {
		if IsOIDCScope(s) {
			if !slices.Contains(oidc, s) {
				oidc = append(oidc, s)
			}
			continue
		}
		r := p.ResourceOf(s)
		i := slices.IndexFunc(groups, func(g ResourceScopes) bool { return g.Resource == r })
		if i < 0 {
			groups = append(groups, ResourceScopes{Resource: r})
			i = len(groups) - 1
		}
		if !slices.Contains(groups[i].Scopes, s) {
			groups[i].Scopes = append(groups[i].Scopes, s)
		}
	}
	if len(groups) == 0 {
		return []ResourceScopes{{Scopes: oidc}}
	}
	for i := range groups {
		groups[i].Scopes = append(groups[i].Scopes, oidc...)
	}
	return groups
}

// ResourceOf returns the resource a Microsoft scope belongs to: the scheme
// and host (and path, for App ID URIs with one) before the last "/" of a
// URL scope, an "api://..." prefix likewise, and Microsoft Graph for bare
// permission names. OIDC scopes belong to no resource ("").
func (p *Provider) ResourceOf(scope string) string {
	if IsOIDCScope(scope) {
		return ""
	}
	if i := strings.LastIndex(scope, "/"); i > 0 && strings.Contains(scope, "://") {
		r := scope[:i]
		// "https://host//.default" names the resource "https://host/"
		// (reference §4.2, trailing slash); keep the resource as written.
		return strings.TrimSuffix(r, "/")
	}
	if p.Cloud != nil {
		return p.Cloud.GraphURL
	}
	return ""
}

// ValidateAppOnlyScopes checks a client credentials scope list before it is
// sent. Microsoft accepts exactly one "<resource>/.default" (OIDC scopes
// beside it are tolerated, as MSAL sends them), and answers anything else
// with AADSTS70011 or 700022 after a round trip; a message naming the fix is
// better. Other providers take the scopes as they are.
func (p *Provider) ValidateAppOnlyScopes(scopes []string) error {
	if p.Kind != KindMicrosoft {
		return nil
	}
	var defaults, others []string
	for _, s := range scopes {
		switch {
		case IsOIDCScope(s):
		case strings.HasSuffix(s, "/.default"):
			defaults = append(defaults, s)
		default:
			others = append(others, s)
		}
	}
	want := p.Cloud.ExchangeAppResource + "/.default"
	switch {
	case len(others) > 0:
		return fmt.Errorf("client credentials accept only <resource>/.default, not %q: use %s (IMAP/POP/SMTP) or %s/.default (Graph)", others[0], want, p.Cloud.GraphURL)
	case len(defaults) == 0:
		return fmt.Errorf("client credentials need one <resource>/.default scope, e.g. %s", want)
	case len(defaults) > 1:
		return fmt.Errorf("client credentials issue a token for one resource, but %d were asked (%s): make one request per resource", len(defaults), strings.Join(defaults, " "))
	}
	if _, err := url.Parse(defaults[0]); err != nil {
		return fmt.Errorf("invalid scope %q: %w", defaults[0], err)
	}
	return nil
}
