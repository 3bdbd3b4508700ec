package emulator

import (
	"strings"
)

// OIDC scopes (reference §4.1). They ride along with any one resource.
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// ResourceScopes is the part of a scope request that names one resource.
type ResourceScopes struct {
	Resource   *Resource
	Identifier string   // as the client wrote it, without trailing "/" ("" for bare Graph names)
	Default    bool     // {resource}/.default
	Perms      []string // canonical permission names (empty with Default)
}

// Prefix is what the emulator writes before permission names in a token
// response's scope: the identifier the client used; Graph names stay bare
// when asked bare, as Microsoft answers.
func (rs ResourceScopes) Prefix() string {
	if rs.Identifier == "" {
		return ""
	}
	return rs.Identifier + "/"
}

// Scopes is a parsed scope parameter: OIDC scopes plus resource scopes in
// the order their resources first appear (the first resource wins where
// only one is allowed).
type Scopes struct {
	Raw       string
	OIDC      []string
	Resources []ResourceScopes
}

// Has reports whether the OIDC scope s was requested.
func (s Scopes) Has(oidc string) bool {
	for _, o := range s.OIDC {
		if o == oidc {
			return true
		}
	}
	return false
}

// First returns the first resource's scopes and whether there is one.
func (s Scopes) First() (ResourceScopes, bool) {
	if len(s.Resources) == 0 {
		return ResourceScopes{}, false
	}
	return s.Resources[0], true
}

// ParseScopes parses a space-separated scope parameter for cloud c
// (reference §4): OIDC scopes; {resource}/Permission; bare names = Microsoft
// Graph; {resource}/.default. Errors: 70011 for an unknown permission or
// .default mixed with dynamic scopes, 500011 for an unknown resource or one
// of another cloud. Several resources are allowed here; the grant decides.
func ParseScopes(c *Cloud, raw string) (Scopes, *Error) {
	s := Scopes{Raw: raw}
	fields := strings.Fields(raw)
	hasDefault, hasDynamic := false, false
	for _, f := range fields {
		low := strings.ToLower(f)
		if _, ok := containsFold(oidcScopes, low); ok {
			if !s.Has(low) {
				s.OIDC = append(s.OIDC, low)
			}
			continue
		}
		ident, perm := "", f
		if i := strings.LastIndex(f, "/"); i >= 0 {
			ident, perm = f[:i], f[i+1:]
		}
		var res *Resource
		if ident == "" {
			if strings.Contains(f, ":") { // a URI without a permission part
				return s, aad(70011, "The scope '"+f+"' is not valid.")
			}
			res = resourceByAppID(GraphAppID)
		} else {
			var other bool
			res, other = resolveResource(c, ident)
			if res == nil {
				_ = other
				return s, aad(500011, ident, "the requested tenant")
			}
			ident = strings.TrimRight(ident, "/")
		}
		idx := -1
		for i := range s.Resources {
			if s.Resources[i].Resource == res {
				idx = i
				break
			}
		}
		if idx < 0 {
			s.Resources = append(s.Resources, ResourceScopes{Resource: res, Identifier: ident})
			idx = len(s.Resources) - 1
		}
		rs := &s.Resources[idx]
		if perm == ".default" {
			rs.Default = true
			hasDefault = true
			continue
		}
		canon, ok := containsFold(res.Delegated, perm)
		if !ok {
			return s, aad(70011, "The scope '"+f+"' does not exist.")
		}
		hasDynamic = true
		if _, dup := containsFold(rs.Perms, canon); !dup {
			rs.Perms = append(rs.Perms, canon)
		}
	}
	if hasDefault && hasDynamic {
		return s, aad(70011, "The scope '"+raw+"' is not valid. static scope limit exceeded.")
	}
	return s, nil
}

// canonicalPerm maps a stored lower-case permission back to its spelling.
func canonicalPerm(res *Resource, lower string, role bool) string {
	list := res.Delegated
	if role {
		list = res.AppRoles
	}
	if c, ok := containsFold(list, lower); ok {
		return c
	}
	return lower
}
