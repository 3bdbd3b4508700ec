package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sort"
	"strings"
	"time"
)

// AccessToken is what one issued access token grants. Access tokens are
// opaque random strings to clients (reference §6); the emulator's mail and
// Graph servers (later issues) ask Lookup what a presented token allows.
type AccessToken struct {
	TenantID  string    `json:"tenant_id"`
	ClientID  string    `json:"client_id"`
	AppName   string    `json:"app_name"`
	UserOID   string    `json:"user_oid,omitempty"` // empty for app-only tokens
	UPN       string    `json:"upn,omitempty"`
	Resource  string    `json:"resource"` // resource app id (ExchangeAppID, GraphAppID)
	Audience  string    `json:"audience"` // identifier the client asked for, e.g. https://outlook.office.com
	Cloud     string    `json:"cloud"`    // cloud name the token was issued in
	Scopes    []string  `json:"scopes"`   // delegated permission names (canonical spelling)
	Roles     []string  `json:"roles"`    // application permission names (app-only)
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Revoked   bool      `json:"revoked"`
}

// AppOnly reports whether the token was issued by client credentials.
func (t AccessToken) AppOnly() bool { return t.UserOID == "" }

// ActiveAt reports whether the token is usable at now: not expired, not
// revoked. (Microsoft cannot revoke access tokens; the emulator can, for
// tests of the resource side.)
func (t AccessToken) ActiveAt(now time.Time) bool { return !t.Revoked && now.Before(t.ExpiresAt) }

// HasScope reports whether the token carries delegated permission p.
func (t AccessToken) HasScope(p string) bool { _, ok := containsFold(t.Scopes, p); return ok }

// HasRole reports whether the token carries application permission p.
func (t AccessToken) HasRole(p string) bool { _, ok := containsFold(t.Roles, p); return ok }

// Lookup returns what access token tok grants and whether the emulator
// issued it. Check ActiveAt(e.Now()) for expiry and revocation.
func (e *Emulator) Lookup(tok string) (AccessToken, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	at := e.access[tok]
	if at == nil {
		return AccessToken{}, false
	}
	c := *at
	c.Scopes = append([]string(nil), at.Scopes...)
	c.Roles = append([]string(nil), at.Roles...)
	return c, true
}

// RefreshToken is one issued refresh token. Refresh tokens are bound to a
// user and a client, not to a resource (reference §2.4); every use rotates
// it and the old one stays valid.
type RefreshToken struct {
	Token          string
	GrantID        string // shared by every rotation of one sign-in
	TenantID       string
	ClientID       string
	UserOID        string
	Public         bool // issued to a public client (no credential on refresh)
	SPA            bool // fixed 24 h lifetime (700084)
	Scopes         Scopes
	IssuedAt       time.Time
	LastUsed       time.Time
	AbsoluteExpiry time.Time // SPA only
	Revoked        bool
}

// refreshInactivity is Microsoft's MaxInactiveTime for refresh tokens.
const refreshInactivity = 90 * 24 * time.Hour

// issueReq is everything a successful grant needs to mint a token response.
type issueReq struct {
	tenant     *Tenant
	app        *App
	user       *User // nil: app-only
	res        ResourceScopes
	oidc       Scopes // requested scopes (for OIDC members and RT scope memory)
	nonce      string
	clientInfo bool
	public     bool
	spa        bool
	grantID    string
	base       string // scheme://host for the id_token issuer
	absExpiry  time.Time
}

// expiresIn returns the access-token lifetime: pinned, or random in
// [3600, 5400] like Entra's 60–90 minutes (reference §6).
func (e *Emulator) expiresInLocked() int {
	if e.model.Settings.ExpiresIn > 0 {
		return e.model.Settings.ExpiresIn
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1801))
	return 3600 + int(n.Int64())
}

// issue mints the token response for req (reference §2.3, §8.9).
func (e *Emulator) issue(req issueReq) (map[string]any, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	exp := e.expiresInLocked()
	res := req.res.Resource
	at := &AccessToken{TenantID: req.tenant.ID, ClientID: req.app.ClientID, AppName: req.app.Name,
		Resource: res.AppID, Audience: req.res.Identifier, Cloud: req.tenant.Cloud.Name,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(exp) * time.Second)}
	if at.Audience == "" {
		at.Audience = res.DefaultIdentifier(req.tenant.Cloud)
	}
	var scopeWords []string
	c := e.model.consent(req.tenant.ID, req.app.ClientID, false)
	if req.user == nil {
		if c != nil {
			for p := range c.AdminRoles[res.AppID] {
				at.Roles = append(at.Roles, canonicalPerm(res, p, true))
			}
		}
		sort.Strings(at.Roles)
		scopeWords = []string{req.res.Prefix() + ".default"}
		if req.res.Identifier == "" {
			scopeWords = []string{res.DefaultIdentifier(req.tenant.Cloud) + "/.default"}
		}
	} else {
		at.UserOID, at.UPN = req.user.ObjectID, req.user.UPN
		granted := map[string]bool{}
		if req.res.Default {
			for _, p := range req.app.Delegated[res.AppID] {
				granted[strings.ToLower(p)] = true
			}
		}
		for _, p := range req.res.Perms {
			granted[strings.ToLower(p)] = true
		}
		if c != nil { // Microsoft returns everything consented on the resource
			for p := range c.AdminDelegated[res.AppID] {
				granted[p] = true
			}
			for p := range c.Users[req.user.ObjectID][res.AppID] {
				granted[p] = true
			}
		}
		for _, p := range sortedKeys(granted) {
			at.Scopes = append(at.Scopes, canonicalPerm(res, p, false))
		}
		for _, p := range at.Scopes {
			scopeWords = append(scopeWords, req.res.Prefix()+p)
		}
		scopeWords = append(scopeWords, req.oidc.OIDC...)
	}
	tok := randomToken("EwB", 144)
	e.access[tok] = at
	out := map[string]any{
		"token_type":     "Bearer",
		"scope":          strings.Join(scopeWords, " "),
		"expires_in":     exp,
		"ext_expires_in": exp,
		"access_token":   tok,
	}
	if e.model.Settings.RefreshIn > 0 {
		out["refresh_in"] = e.model.Settings.RefreshIn
	}
	if req.user == nil {
		return out, nil
	}
	if req.oidc.Has("offline_access") {
		grant := req.grantID
		if grant == "" {
			grant = newGUID()
		}
		rt := &RefreshToken{Token: randomToken("1.AR", 240), GrantID: grant, TenantID: req.tenant.ID,
			ClientID: req.app.ClientID, UserOID: req.user.ObjectID, Public: req.public, SPA: req.spa,
			Scopes: req.oidc, IssuedAt: now, LastUsed: now, AbsoluteExpiry: req.absExpiry}
		if req.spa && rt.AbsoluteExpiry.IsZero() {
			rt.AbsoluteExpiry = now.Add(24 * time.Hour)
		}
		e.refresh[rt.Token] = rt
		out["refresh_token"] = rt.Token
	}
	if req.oidc.Has("openid") {
		idt, err := e.idToken(req, now)
		if err != nil {
			return nil, &Error{OAuth: "server_error", Status: 500, Description: "could not sign the id_token"}
		}
		out["id_token"] = idt
	}
	if req.clientInfo {
		ci, _ := json.Marshal(map[string]string{"uid": req.user.ObjectID, "utid": req.tenant.ID})
		out["client_info"] = base64.RawURLEncoding.EncodeToString(ci)
	}
	return out, nil
}

// idToken builds the RS256 id_token (reference §2.3; claims as v2.0 tokens).
func (e *Emulator) idToken(req issueReq, now time.Time) (string, error) {
	u := req.user
	claims := map[string]any{
		"aud": req.app.ClientID,
		"iss": req.base + "/" + req.tenant.ID + "/v2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"oid": u.ObjectID, "tid": req.tenant.ID, "ver": "2.0",
		"sub":                derivedGUID("pairwise", u.ObjectID, req.app.ClientID),
		"preferred_username": u.UPN,
		"uti":                randomToken("", 16),
	}
	if req.oidc.Has("profile") {
		claims["name"] = u.DisplayName
	}
	if req.oidc.Has("email") {
		claims["email"] = u.UPN
	}
	if req.nonce != "" {
		claims["nonce"] = req.nonce
	}
	return e.signJWT(claims)
}
