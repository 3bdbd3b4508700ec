package emulator

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// TenantKind says which kind of {tenant} path segment a request used.
type TenantKind int

// Tenant path kinds (reference §1.1).
const (
	TenantSpecific      TenantKind = iota // a GUID or verified domain
	TenantCommon                          // common
	TenantOrganizations                   // organizations
	TenantConsumers                       // consumers or the consumer tenant GUID
)

// TenantRef is a resolved {tenant} path segment.
type TenantRef struct {
	Segment string     // as in the path
	Kind    TenantKind // which kind of segment
	Tenant  *Tenant    // the tenant for TenantSpecific (and the scenario's consumer tenant, if any, for TenantConsumers)
	Cloud   *Cloud     // the cloud of the request's Host
}

// label is how error texts name the tenant of the request.
func (ref TenantRef) label() string {
	if ref.Tenant != nil {
		return ref.Tenant.ID
	}
	return ref.Segment
}

// ResolveTenant resolves the {tenant} path segment of r for the cloud of r's
// Host: common, organizations, consumers, a tenant GUID or a verified
// domain. Unknown → AADSTS90002; a tenant of another cloud → AADSTS90038.
func (e *Emulator) ResolveTenant(r interface{ PathValue(string) string }, cloud *Cloud) (TenantRef, *Error) {
	return e.resolveTenantSegment(r.PathValue("tenant"), cloud)
}

func (e *Emulator) resolveTenantSegment(seg string, cloud *Cloud) (TenantRef, *Error) {
	ref := TenantRef{Segment: seg, Cloud: cloud}
	e.mu.Lock()
	defer e.mu.Unlock()
	low := strings.ToLower(seg)
	switch low {
	case "common":
		ref.Kind = TenantCommon
		return ref, nil
	case "organizations":
		ref.Kind = TenantOrganizations
		return ref, nil
	case "consumers", ConsumerTenantID:
		ref.Kind = TenantConsumers
		for _, t := range e.model.Tenants {
			if t.Consumer {
				ref.Tenant = t
			}
		}
		return ref, nil
	}
	var t *Tenant
	if isGUID(low) {
		t = e.model.tenantByID(low)
	} else {
		t = e.model.tenantByDomain(low)
	}
	if t == nil {
		return ref, aad(90002, seg)
	}
	if t.Cloud.loginFamily() != cloud.loginFamily() {
		return ref, aad(90038, seg, cloud.Name, t.Cloud.Name)
	}
	ref.Tenant = t
	return ref, nil
}

// FindApp finds the app registration clientID as seen from ref, applying the
// sign-in audience rules: unknown app, or an app of another cloud, or a
// single-tenant app used from a foreign tenant → AADSTS700016; single-tenant
// app on /common or /organizations → 50194; work/school-only app on
// /consumers → 9002332; personal-only app elsewhere → 9002346. Whether the
// app has a service principal in the tenant is a separate check
// (HasServicePrincipal), because interactive consent creates one.
func (e *Emulator) FindApp(ref TenantRef, clientID string) (*App, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.model.app(clientID)
	if a == nil || a.HomeTenant.Cloud.loginFamily() != ref.Cloud.loginFamily() {
		return nil, aad(700016, clientID, ref.label())
	}
	switch ref.Kind {
	case TenantCommon, TenantOrganizations:
		if a.SignInAudience == AudienceMyOrg {
			return nil, aad(50194, a.ClientID, a.Name)
		}
		if ref.Kind == TenantOrganizations && a.SignInAudience == AudiencePersonalOnly {
			return nil, aad(9002346, a.ClientID, a.Name)
		}
	case TenantConsumers:
		if a.SignInAudience == AudienceMyOrg || a.SignInAudience == AudienceMultipleOrgs {
			return nil, aad(9002332, a.ClientID, a.Name)
		}
	case TenantSpecific:
		if a.SignInAudience == AudiencePersonalOnly {
			return nil, aad(9002346, a.ClientID, a.Name)
		}
		if a.HomeTenant != ref.Tenant && !a.MultiTenant() {
			return nil, aad(700016, clientID, ref.label())
		}
	}
	return a, nil
}

// HasServicePrincipal reports whether app a exists in tenant t (its home
// tenant, or any tenant where someone consented). Non-interactive grants
// (client credentials, ROPC) need it, else AADSTS700016.
func (e *Emulator) HasServicePrincipal(t *Tenant, a *App) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model.hasServicePrincipal(t, a)
}

// FindUser finds the account login (UPN, case-insensitive) as seen from
// ref: on a specific tenant the user must belong to it; on /consumers it
// must be a personal account; on /common or /organizations any work/school
// account of the cloud. Otherwise AADSTS50034.
func (e *Emulator) FindUser(ref TenantRef, login string) (*User, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.model.userByUPN(strings.TrimSpace(login))
	tenantName := ref.label()
	if u == nil {
		return nil, aad(50034, login, tenantName)
	}
	ok := false
	switch ref.Kind {
	case TenantSpecific:
		ok = u.Tenant == ref.Tenant
	case TenantConsumers:
		ok = u.Tenant.Consumer
	case TenantOrganizations:
		ok = !u.Tenant.Consumer
	case TenantCommon:
		ok = true
	}
	if !ok || u.Tenant.Cloud.loginFamily() != ref.Cloud.loginFamily() {
		return nil, aad(50034, login, tenantName)
	}
	return u, nil
}

// CheckPassword compares password with u's (AADSTS50126 on mismatch).
func (e *Emulator) CheckPassword(u *User, password string) *Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u.Password == "" || u.Password != password {
		return aad(50126)
	}
	return nil
}

// CheckSignIn applies the account's state to a sign-in: disabled →
// AADSTS50057, blocked by Conditional Access → 53003, and for a
// non-interactive sign-in (ROPC) MFA required → 50076. An interactive sign-in
// (HTML page, device code) is taken to satisfy MFA. resource names the API in
// the 50076 text.
func (e *Emulator) CheckSignIn(u *User, interactive bool, resource string) *Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case u.Disabled:
		return aad(50057)
	case u.CABlocked:
		return aad(53003)
	case u.MFARequired && !interactive:
		if resource == "" {
			resource = GraphAppID
		}
		return aad(50076, resource)
	}
	return nil
}

// ValidateRedirectURI checks uri against a's registered redirect URIs
// (reference §2.1): loopback http URIs (localhost, 127.0.0.1) match ignoring
// the port; everything else must match exactly; [::1] never matches. No URI
// registered at all → AADSTS500113; no match → 50011. It returns the
// platform of the matching registration (decides public vs confidential).
func (e *Emulator) ValidateRedirectURI(a *App, uri string) (Platform, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	total := 0
	for _, p := range []Platform{PlatformPublic, PlatformSPA, PlatformWeb} {
		for _, reg := range a.RedirectURIs[p] {
			total++
			if redirectMatches(reg, uri) {
				return p, nil
			}
		}
	}
	if total == 0 {
		return "", aad(500113)
	}
	return "", aad(50011, uri, a.ClientID)
}

// redirectMatches implements Microsoft's reply-URL matching.
func redirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	ru, err1 := url.Parse(registered)
	qu, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || ru.Scheme != "http" || qu.Scheme != "http" {
		return false
	}
	rh, qh := ru.Hostname(), qu.Hostname()
	if rh != qh || (rh != "localhost" && rh != "127.0.0.1") {
		return false
	}
	if ip := net.ParseIP(qh); ip != nil && ip.To4() == nil {
		return false
	}
	rp, qp := ru.EscapedPath(), qu.EscapedPath()
	if rp == "" {
		rp = "/"
	}
	if qp == "" {
		qp = "/"
	}
	return rp == qp && ru.RawQuery == qu.RawQuery
}

// ParseScopes parses a scope parameter for the cloud of the request; see the
// package-level ParseScopes.
func (e *Emulator) ParseScopes(c *Cloud, raw string) (Scopes, *Error) { return ParseScopes(c, raw) }

// MissingConsent lists the delegated scopes of s that neither an admin (for
// all users) nor user u consented for app a in tenant t. For
// {resource}/.default it checks the app's registered permissions of that
// resource. Empty means the grant may proceed; otherwise the token endpoint
// answers AADSTS65001 and /authorize shows the consent page.
func (e *Emulator) MissingConsent(t *Tenant, a *App, u *User, s Scopes) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.missingConsentLocked(t, a, u, s)
}

func (e *Emulator) missingConsentLocked(t *Tenant, a *App, u *User, s Scopes) []string {
	c := e.model.consent(t.ID, a.ClientID, false)
	var missing []string
	for _, rs := range s.Resources {
		perms := rs.Perms
		if rs.Default {
			perms = a.Delegated[rs.Resource.AppID]
		}
		for _, p := range perms {
			lp := strings.ToLower(p)
			ok := false
			if c != nil {
				ok = c.AdminDelegated[rs.Resource.AppID][lp] || (u != nil && c.Users[u.ObjectID][rs.Resource.AppID][lp])
			}
			if !ok {
				missing = append(missing, rs.Prefix()+p)
			}
		}
	}
	return missing
}

// RecordUserConsent records that u consented to s for app a in tenant t
// (creating a's service principal there). {resource}/.default consents to
// the app's registered delegated permissions of that resource.
func (e *Emulator) RecordUserConsent(t *Tenant, a *App, u *User, s Scopes) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.model.consent(t.ID, a.ClientID, true)
	if c.Users[u.ObjectID] == nil {
		c.Users[u.ObjectID] = map[string]map[string]bool{}
	}
	for _, rs := range s.Resources {
		perms := rs.Perms
		if rs.Default {
			perms = a.Delegated[rs.Resource.AppID]
		}
		for _, p := range perms {
			addPerm(c.Users[u.ObjectID], rs.Resource.AppID, p)
		}
	}
}

// RecordAdminConsent records admin consent for app a in tenant t: for each
// {resource}/.default of s every registered permission of that resource
// (delegated and application), for dynamic scopes those delegated scopes;
// with no resource scopes at all (v1 adminconsent), every registered
// permission. It returns the granted scopes as the adminconsent redirect's
// scope parameter lists them.
func (e *Emulator) RecordAdminConsent(t *Tenant, a *App, s Scopes) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.model.consent(t.ID, a.ClientID, true)
	var granted []string
	grantRes := func(resID, prefix string) {
		res := resourceByAppID(resID)
		for _, p := range a.Delegated[resID] {
			addPerm(c.AdminDelegated, resID, p)
			granted = append(granted, prefix+p)
		}
		for _, p := range a.AppRoles[resID] {
			addPerm(c.AdminRoles, resID, p)
			granted = append(granted, prefix+p)
		}
		_ = res
	}
	if len(s.Resources) == 0 {
		for _, res := range Resources {
			grantRes(res.AppID, res.DefaultIdentifier(t.Cloud)+"/")
		}
		return granted
	}
	for _, rs := range s.Resources {
		if rs.Default {
			grantRes(rs.Resource.AppID, rs.Prefix())
			continue
		}
		for _, p := range rs.Perms {
			addPerm(c.AdminDelegated, rs.Resource.AppID, p)
			granted = append(granted, rs.Prefix()+p)
		}
	}
	return granted
}

// AuthCodeRequest is what /authorize binds an authorization code to.
type AuthCodeRequest struct {
	Tenant              *Tenant // the tenant the token will be issued in (the user's)
	PathTenant          string  // {tenant} segment of /authorize; redemption must use the same tenant (700005)
	App                 *App
	User                *User
	RedirectURI         string
	Platform            Platform // from ValidateRedirectURI
	Scopes              Scopes
	CodeChallenge       string
	CodeChallengeMethod string // "S256", "plain" or "" (= plain when a challenge is present)
	Nonce               string
}

// AuthCode is an issued authorization code (valid ~10 minutes, single use).
type AuthCode struct {
	AuthCodeRequest
	Code      string
	IssuedAt  time.Time
	ExpiresAt time.Time
	Redeemed  bool
}

// IssueAuthCode stores an authorization code bound to req and returns it.
// Its lifetime is the scenario's auth_code_lifetime (default 600 s).
func (e *Emulator) IssueAuthCode(req AuthCodeRequest) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if req.CodeChallenge != "" && req.CodeChallengeMethod == "" {
		req.CodeChallengeMethod = "plain"
	}
	now := e.now()
	c := &AuthCode{AuthCodeRequest: req, Code: randomToken("1.A", 96), IssuedAt: now,
		ExpiresAt: now.Add(time.Duration(e.model.Settings.AuthCodeLifetime) * time.Second)}
	e.authCodes[c.Code] = c
	return c.Code
}

// DeviceCode is one pending device authorization (reference §2.5).
type DeviceCode struct {
	DeviceCode string
	UserCode   string
	Ref        TenantRef // the {tenant} of the devicecode request
	App        *App
	Scopes     Scopes
	IssuedAt   time.Time
	ExpiresAt  time.Time
	Interval   int
	LastPoll   time.Time
	Approved   bool
	Declined   bool
	User       *User
}

// DeviceCodeInfo is what the device sign-in page shows about a user code.
type DeviceCodeInfo struct {
	UserCode  string
	Ref       TenantRef
	App       *App
	Scopes    Scopes
	ExpiresAt time.Time
	Approved  bool
	Declined  bool
}

// LookupUserCode finds a pending device code by the code the user typed
// (case-insensitive, dashes and spaces ignored). Unknown → 70018
// bad_verification_code; expired → 70019 expired_token.
func (e *Emulator) LookupUserCode(userCode string) (DeviceCodeInfo, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	dc, err := e.userCodeLocked(userCode)
	if err != nil {
		return DeviceCodeInfo{}, err
	}
	return DeviceCodeInfo{UserCode: dc.UserCode, Ref: dc.Ref, App: dc.App, Scopes: dc.Scopes, ExpiresAt: dc.ExpiresAt,
		Approved: dc.Approved, Declined: dc.Declined}, nil
}

func normalizeUserCode(s string) string {
	s = strings.ToUpper(s)
	return strings.NewReplacer("-", "", " ", "").Replace(s)
}

func (e *Emulator) userCodeLocked(userCode string) (*DeviceCode, *Error) {
	dc := e.userCodes[normalizeUserCode(userCode)]
	if dc == nil {
		return nil, aad(70018)
	}
	if !e.now().Before(dc.ExpiresAt) {
		return nil, aad(70019)
	}
	return dc, nil
}

// ApproveDeviceCode completes the device sign-in for userCode as user u (the
// device page after password entry, or the admin API). The user must be
// allowed on the devicecode request's tenant (50034) and pass CheckSignIn
// (interactive: MFA counts as done). Approval records u's consent to the
// requested scopes. The next poll then gets tokens.
func (e *Emulator) ApproveDeviceCode(userCode string, u *User) *Error {
	e.mu.Lock()
	dc, err := e.userCodeLocked(userCode)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if _, ferr := e.FindUser(dc.Ref, u.UPN); ferr != nil {
		return ferr
	}
	if serr := e.CheckSignIn(u, true, ""); serr != nil {
		return serr
	}
	if dc.App.HomeTenant != u.Tenant && !dc.App.MultiTenant() {
		return aad(700016, dc.App.ClientID, u.Tenant.ID)
	}
	e.RecordUserConsent(u.Tenant, dc.App, u, dc.Scopes)
	e.mu.Lock()
	defer e.mu.Unlock()
	if dc.Approved || dc.Declined {
		return aad(70000, "The device code was already approved or declined.")
	}
	dc.Approved, dc.User = true, u
	return nil
}

// DenyDeviceCode records that the user declined; the next poll gets
// authorization_declined.
func (e *Emulator) DenyDeviceCode(userCode string) *Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	dc, err := e.userCodeLocked(userCode)
	if err != nil {
		return err
	}
	if dc.Approved || dc.Declined {
		return aad(70000, "The device code was already approved or declined.")
	}
	dc.Declined = true
	return nil
}

// DeviceLoginURL is the verification_uri the emulator hands out: its own
// device page on the host the client used (Microsoft's
// https://microsoft.com/devicelogin is not reachable offline).
func (e *Emulator) DeviceLoginURL(base string) string { return base + "/devicelogin" }

// IsAdmin reports whether u may grant tenant-wide admin consent.
func (e *Emulator) IsAdmin(u *User) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return u.Admin
}

// UserConsentDisabled reports whether tenant t lets only admins consent.
func (e *Emulator) UserConsentDisabled(t *Tenant) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return t.UserConsentDisabled
}
