package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody caps token and devicecode request bodies; anything larger gets an
// error JSON instead of being read.
const maxBody = 1 << 20

// Grant types (reference §2).
const (
	grantAuthCode     = "authorization_code"
	grantRefresh      = "refresh_token"
	grantDeviceURN    = "urn:ietf:params:oauth:grant-type:device_code"
	grantDeviceShort  = "device_code"
	grantClientCreds  = "client_credentials"
	grantPassword     = "password"
	assertionTypeJWT  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	formContentType   = "application/x-www-form-urlencoded"
	devicePollCounter = "token:device_code"
)

// tokenRequest is one parsed call to the token endpoint.
type tokenRequest struct {
	r           *http.Request
	form        url.Values
	ref         TenantRef
	app         *App
	clientID    string
	basicSecret string
	hasBasic    bool
	v1          bool
}

func (tr *tokenRequest) get(k string) string { return tr.form.Get(k) }

// readForm reads a POSTed form with Microsoft's checks: POST only, the form
// content type, a capped body, and well-formed encoding. It is the one place
// the token and devicecode endpoints parse network input.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *Error) {
	if r.Method != http.MethodPost {
		return nil, aad(900561, r.Method)
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != formContentType {
		return nil, aad(900021, "Use Content-Type: application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, aad(90101, "The limit is 1 MiB.")
		}
		e := aad(9002313)
		e.OAuth = "invalid_request"
		return nil, e
	}
	return parseFormStrict(r.PostForm)
}

// parseFormStrict rejects repeated parameters, which Microsoft refuses
// rather than picking one.
func parseFormStrict(v url.Values) (url.Values, *Error) {
	for k, vals := range v {
		if len(vals) > 1 {
			return nil, aad(90100, k)
		}
	}
	return v, nil
}

// handleToken is POST /{tenant}/oauth2/v2.0/token with every grant.
func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request) { e.token(w, r, false) }

// handleTokenV1 is the v1 endpoint /{tenant}/oauth2/token: the same grants,
// with resource= turned into {resource}/.default when no scope is given.
func (e *Emulator) handleTokenV1(w http.ResponseWriter, r *http.Request) { e.token(w, r, true) }

func (e *Emulator) token(w http.ResponseWriter, r *http.Request, v1 bool) {
	out, aerr := e.tokenResponse(w, r, v1)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("x-ms-request-id", newGUID())
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) tokenResponse(w http.ResponseWriter, r *http.Request, v1 bool) (map[string]any, *Error) {
	e.mu.Lock()
	throttle, retry, loop := e.model.Settings.Throttle, e.model.Settings.RetryAfter, e.model.Settings.LoopDetection
	e.mu.Unlock()
	if throttle {
		err := aad(90055)
		err.RetryAfter = retry
		return nil, err
	}
	form, aerr := readForm(w, r)
	if aerr != nil {
		return nil, aerr
	}
	tr := &tokenRequest{r: r, form: form, v1: v1}
	if v1 && form.Get("scope") == "" && form.Get("resource") != "" {
		form.Set("scope", strings.TrimRight(form.Get("resource"), "/")+"/.default")
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return nil, aad(900144, "grant_type")
	}
	e.count("token:" + grant)
	tr.clientID = form.Get("client_id")
	if user, pass, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
		uid, err1 := url.QueryUnescape(user)
		sec, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, aad(90023, "The Authorization header is malformed.")
		}
		if tr.clientID != "" && !strings.EqualFold(tr.clientID, uid) {
			return nil, aad(90023, "The client_id in the Authorization header does not match the request body.")
		}
		tr.clientID, tr.basicSecret, tr.hasBasic = uid, sec, true
	}
	if tr.clientID == "" {
		return nil, aad(900144, "client_id")
	}
	cloud := e.cloudOf(r)
	ref, aerr := e.ResolveTenant(r, cloud)
	if aerr != nil {
		return nil, aerr
	}
	tr.ref = ref
	switch grant {
	case grantAuthCode, grantRefresh, grantDeviceURN, grantDeviceShort, grantClientCreds, grantPassword:
	default:
		return nil, aad(70003, grant)
	}
	app, aerr := e.FindApp(ref, tr.clientID)
	if aerr != nil {
		return nil, aerr
	}
	tr.app = app
	if loop && grant != grantClientCreds {
		return nil, aad(50196)
	}
	switch grant {
	case grantAuthCode:
		return e.grantAuthorizationCode(tr)
	case grantRefresh:
		return e.grantRefreshToken(tr)
	case grantDeviceURN, grantDeviceShort:
		return e.grantDeviceCode(tr)
	case grantClientCreds:
		return e.grantClientCredentials(tr)
	default:
		return e.grantPassword(tr)
	}
}

// authenticateClient applies the public/confidential rules (reference §2.2,
// §8.2): a public client must send no credential (700025); a confidential
// one must send exactly one (7000218), and it must be right (7000215,
// 7000222, assertion errors).
func (e *Emulator) authenticateClient(tr *tokenRequest, public bool) *Error {
	secret := tr.get("client_secret")
	if tr.hasBasic {
		if secret != "" {
			return aad(90023, "Client secret must be sent only once (body or Authorization header).")
		}
		secret = tr.basicSecret
	}
	assertion, atype := tr.get("client_assertion"), tr.get("client_assertion_type")
	hasSecret, hasAssertion := secret != "" || tr.hasBasic, assertion != "" || atype != ""
	if public {
		if hasSecret || hasAssertion {
			return aad(700025)
		}
		return nil
	}
	switch {
	case hasSecret && hasAssertion:
		return aad(90023, "Only one client credential (client_secret or client_assertion) may be presented.")
	case hasSecret:
		return e.checkSecret(tr.app, secret)
	case hasAssertion:
		if atype == "" {
			return aad(90014, "client_assertion_type")
		}
		if atype != assertionTypeJWT {
			return aad(90023, "Unsupported client_assertion_type '"+atype+"'.")
		}
		if assertion == "" {
			return aad(90014, "client_assertion")
		}
		return e.validateAssertion(tr, assertion)
	}
	return aad(7000218)
}

// checkSecret compares secret with the app's secrets in constant time.
// Sending the secret's ID instead of its value is a common mistake
// (reference §3.2): the answer is still 7000215, with a note saying so.
func (e *Emulator) checkSecret(a *App, secret string) *Error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range a.Secrets {
		if subtle.ConstantTimeCompare([]byte(s.Value), []byte(secret)) == 1 {
			if !s.Expires.IsZero() && !e.now().Before(s.Expires) {
				return aad(7000222, a.ClientID)
			}
			return nil
		}
	}
	err := aad(7000215, a.ClientID)
	for _, s := range a.Secrets {
		if strings.EqualFold(s.ID, secret) {
			err.Description += " The value sent is the ID of a secret of this app, not its value."
		}
	}
	return err
}

// userTenant returns the tenant a user's token is issued in.
func userTenant(u *User) *Tenant { return u.Tenant }

func (e *Emulator) grantAuthorizationCode(tr *tokenRequest) (map[string]any, *Error) {
	code := tr.get("code")
	if code == "" {
		return nil, aad(900144, "code")
	}
	e.mu.Lock()
	ac := e.authCodes[code]
	e.mu.Unlock()
	if ac == nil { // Entra checks the code's shape before the client (reference §3.2)
		return nil, aad(9002313)
	}
	if tr.get("redirect_uri") == "" {
		return nil, aad(900144, "redirect_uri")
	}
	if ac.App != tr.app {
		return nil, aad(70000, "The authorization code was issued to a different client.")
	}
	public := ac.Platform != PlatformWeb
	if err := e.authenticateClient(tr, public); err != nil {
		return nil, err
	}
	origin := tr.r.Header.Get("Origin")
	if ac.Platform == PlatformSPA && origin == "" {
		return nil, aad(9002327)
	}
	if ac.Platform != PlatformSPA && origin != "" {
		return nil, aad(9002326, origin)
	}
	e.mu.Lock()
	now := e.now()
	redeemed, expired := ac.Redeemed, !now.Before(ac.ExpiresAt)
	e.mu.Unlock()
	switch {
	case redeemed:
		return nil, aad(54005)
	case expired:
		return nil, aad(70008)
	}
	if tr.ref.Kind == TenantSpecific && tr.ref.Tenant != ac.Tenant {
		return nil, aad(700005)
	}
	if tr.get("redirect_uri") != ac.RedirectURI {
		return nil, aad(500112, tr.get("redirect_uri"), ac.RedirectURI)
	}
	if ac.CodeChallenge != "" && !pkceMatches(ac.CodeChallengeMethod, ac.CodeChallenge, tr.get("code_verifier")) {
		return nil, aad(501481)
	}
	scopes := ac.Scopes
	if raw := tr.get("scope"); raw != "" {
		s, err := ParseScopes(tr.ref.Cloud, raw)
		if err != nil {
			return nil, err
		}
		if len(s.Resources) > 1 {
			return nil, aad(28000, raw)
		}
		scopes = mergeOIDC(s, ac.Scopes)
	}
	res := firstResource(scopes)
	if miss := e.MissingConsent(ac.Tenant, tr.app, ac.User, Scopes{Resources: []ResourceScopes{res}}); len(miss) > 0 {
		return nil, aad(65001, tr.app.ClientID, tr.app.Name)
	}
	if err := e.CheckSignIn(ac.User, true, res.Identifier); err != nil {
		return nil, err
	}
	e.mu.Lock()
	if ac.Redeemed {
		e.mu.Unlock()
		return nil, aad(54005)
	}
	ac.Redeemed = true
	e.mu.Unlock()
	return e.issue(issueReq{tenant: ac.Tenant, app: tr.app, user: ac.User, res: res, oidc: scopes, nonce: ac.Nonce,
		clientInfo: tr.get("client_info") == "1", public: public, spa: ac.Platform == PlatformSPA, base: e.BaseURL(tr.r)})
}

// mergeOIDC keeps the OIDC scopes of the original grant when a redemption
// or refresh names only resource scopes (offline_access was consented).
func mergeOIDC(s, orig Scopes) Scopes {
	for _, o := range orig.OIDC {
		if !s.Has(o) {
			s.OIDC = append(s.OIDC, o)
		}
	}
	return s
}

// firstResource returns the resource a token is issued for: the first one
// named (reference §4.4), or Microsoft Graph when only OIDC scopes were asked.
func firstResource(s Scopes) ResourceScopes {
	if rs, ok := s.First(); ok {
		return rs
	}
	return ResourceScopes{Resource: resourceByAppID(GraphAppID)}
}

// pkceMatches checks a code_verifier against the stored challenge (RFC 7636
// §4.6): S256 = base64url(SHA-256(verifier)) without padding; plain = equal.
func pkceMatches(method, challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	var got string
	switch strings.ToUpper(method) {
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		got = base64.RawURLEncoding.EncodeToString(sum[:])
	case "PLAIN", "":
		got = verifier
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func (e *Emulator) grantRefreshToken(tr *tokenRequest) (map[string]any, *Error) {
	tok := tr.get("refresh_token")
	if tok == "" {
		return nil, aad(900144, "refresh_token")
	}
	e.mu.Lock()
	rt := e.refresh[tok]
	e.mu.Unlock()
	if rt == nil {
		return nil, aad(9002313)
	}
	if !strings.EqualFold(rt.ClientID, tr.app.ClientID) {
		return nil, aad(70000, "The refresh token was issued to a different client.")
	}
	if err := e.authenticateClient(tr, rt.Public); err != nil {
		return nil, err
	}
	e.mu.Lock()
	now := e.now()
	u := e.model.userByOID(rt.UserOID)
	tenant := e.model.tenantByID(rt.TenantID)
	var rerr *Error
	switch {
	case u == nil || tenant == nil:
		rerr = aad(50173, formatMSTime(rt.IssuedAt), formatMSTime(now))
	case rt.Revoked:
		rerr = aad(50173, formatMSTime(rt.IssuedAt), formatMSTime(now))
	case rt.IssuedAt.Before(u.TokensValidFrom):
		rerr = aad(50173, formatMSTime(rt.IssuedAt), formatMSTime(u.TokensValidFrom))
	case rt.SPA && !now.Before(rt.AbsoluteExpiry):
		rerr = aad(700084, formatMSTime(rt.IssuedAt))
	case now.Sub(rt.LastUsed) >= refreshInactivity:
		rerr = aad(700082, formatMSTime(rt.IssuedAt))
	}
	e.mu.Unlock()
	if rerr != nil {
		return nil, rerr
	}
	scopes := rt.Scopes
	if raw := tr.get("scope"); raw != "" {
		s, err := ParseScopes(tenant.Cloud, raw)
		if err != nil {
			return nil, err
		}
		scopes = mergeOIDC(s, rt.Scopes)
	}
	res := firstResource(scopes) // several resources: the first one wins (reference §2.4)
	if miss := e.MissingConsent(tenant, tr.app, u, Scopes{Resources: []ResourceScopes{res}}); len(miss) > 0 {
		return nil, aad(65001, tr.app.ClientID, tr.app.Name)
	}
	if err := e.CheckSignIn(u, true, res.Identifier); err != nil {
		return nil, err
	}
	e.mu.Lock()
	rt.LastUsed = now
	e.mu.Unlock()
	// The new RT remembers the scopes of the grant, with this request's
	// resource first.
	return e.issue(issueReq{tenant: tenant, app: tr.app, user: u, res: res, oidc: scopes,
		clientInfo: tr.get("client_info") == "1", public: rt.Public, spa: rt.SPA, grantID: rt.GrantID,
		absExpiry: rt.AbsoluteExpiry, base: e.BaseURL(tr.r)})
}

func (e *Emulator) grantDeviceCode(tr *tokenRequest) (map[string]any, *Error) {
	code := tr.get("device_code")
	if code == "" {
		return nil, aad(900144, "device_code")
	}
	e.mu.Lock()
	dc := e.deviceCodes[code]
	e.mu.Unlock()
	if dc == nil || dc.App != tr.app {
		return nil, aad(70018)
	}
	if err := e.authenticateClient(tr, e.publicClientFlows(tr.app)); err != nil {
		return nil, err
	}
	e.mu.Lock()
	now := e.now()
	slow := e.model.Settings.SlowDown && !dc.LastPoll.IsZero() && now.Sub(dc.LastPoll) < time.Duration(dc.Interval)*time.Second
	dc.LastPoll = now
	var derr *Error
	switch {
	case !now.Before(dc.ExpiresAt):
		derr = aad(70019)
	case dc.Declined:
		derr = aad(70020)
		e.dropDeviceCodeLocked(dc)
	case slow:
		derr = aad(70021)
	case !dc.Approved:
		derr = aad(70016)
	}
	if derr != nil {
		e.mu.Unlock()
		return nil, derr
	}
	e.dropDeviceCodeLocked(dc)
	u := dc.User
	e.mu.Unlock()
	res := firstResource(dc.Scopes)
	return e.issue(issueReq{tenant: userTenant(u), app: tr.app, user: u, res: res, oidc: dc.Scopes,
		clientInfo: tr.get("client_info") == "1", public: e.publicClientFlows(tr.app), base: e.BaseURL(tr.r)})
}

func (e *Emulator) dropDeviceCodeLocked(dc *DeviceCode) {
	delete(e.deviceCodes, dc.DeviceCode)
	delete(e.userCodes, dc.UserCode)
}

func (e *Emulator) grantClientCredentials(tr *tokenRequest) (map[string]any, *Error) {
	if tr.ref.Kind != TenantSpecific {
		return nil, aad(50059)
	}
	if err := e.authenticateClient(tr, false); err != nil {
		return nil, err
	}
	if !e.HasServicePrincipal(tr.ref.Tenant, tr.app) {
		return nil, aad(700016, tr.app.ClientID, tr.ref.Tenant.ID)
	}
	raw := tr.get("scope")
	if raw == "" {
		return nil, aad(90014, "scope")
	}
	s, err := ParseScopes(tr.ref.Cloud, raw)
	if err != nil {
		if err.Code == 70011 {
			err = aad(70011, "The scope '"+raw+"' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		}
		return nil, err
	}
	if len(s.Resources) > 1 {
		return nil, aad(700022, raw)
	}
	rs, ok := s.First()
	if !ok || !rs.Default {
		return nil, aad(70011, "The scope '"+raw+"' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
	}
	// MSAL appends "openid offline_access profile" even here (reference
	// §2.2): tolerated, and no refresh or id token is issued.
	return e.issue(issueReq{tenant: tr.ref.Tenant, app: tr.app, res: rs, base: e.BaseURL(tr.r)})
}

func (e *Emulator) grantPassword(tr *tokenRequest) (map[string]any, *Error) {
	if tr.ref.Kind == TenantCommon || tr.ref.Kind == TenantConsumers {
		return nil, aad(9001023)
	}
	username, password := tr.get("username"), tr.get("password")
	if username == "" {
		return nil, aad(900144, "username")
	}
	if password == "" {
		return nil, aad(900144, "password")
	}
	if err := e.authenticateClient(tr, e.publicClientFlows(tr.app)); err != nil {
		return nil, err
	}
	raw := tr.get("scope")
	s, serr := ParseScopes(tr.ref.Cloud, raw)
	if serr != nil {
		return nil, serr
	}
	u, err := e.FindUser(tr.ref, username)
	if err != nil {
		return nil, err
	}
	if err := e.CheckPassword(u, password); err != nil {
		return nil, err
	}
	res := firstResource(s)
	if err := e.CheckSignIn(u, false, res.Resource.AppID); err != nil {
		return nil, err
	}
	t := userTenant(u)
	if tr.app.HomeTenant != t && !tr.app.MultiTenant() {
		return nil, aad(700016, tr.app.ClientID, t.ID)
	}
	if !e.HasServicePrincipal(t, tr.app) {
		return nil, aad(65001, tr.app.ClientID, tr.app.Name)
	}
	if miss := e.MissingConsent(t, tr.app, u, Scopes{Resources: []ResourceScopes{res}}); len(miss) > 0 {
		return nil, aad(65001, tr.app.ClientID, tr.app.Name)
	}
	return e.issue(issueReq{tenant: t, app: tr.app, user: u, res: res, oidc: s,
		clientInfo: tr.get("client_info") == "1", public: e.publicClientFlows(tr.app), base: e.BaseURL(tr.r)})
}

// publicClientFlows reads the app's "Allow public client flows" switch
// under the lock (the admin API flips it at run time).
func (e *Emulator) publicClientFlows(a *App) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return a.AllowPublicClient
}
