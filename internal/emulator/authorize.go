package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// authzParams are the /authorize parameters (reference §2.1), as sent.
type authzParams struct {
	ClientID            string
	RedirectURI         string
	ResponseType        string
	ResponseMode        string
	Scope               string
	Resource            string // v1 endpoint
	State               string
	Nonce               string
	Prompt              string
	LoginHint           string
	DomainHint          string
	CodeChallenge       string
	CodeChallengeMethod string
	ClientInfo          string
	// HasChallenge: code_challenge was present (even empty).
	HasChallenge bool
	// Bad names the first parameter that was repeated or too long; BadErr
	// is its error. Reported on the page for client_id and redirect_uri,
	// else redirected, as Microsoft orders its checks.
	Bad    string
	BadErr *Error
}

// parseAuthorizeParams reads the parameters of an authorize request. It
// never fails: problems are recorded in Bad so the caller can report them at
// the right point (page or redirect).
func parseAuthorizeParams(v url.Values) authzParams {
	var p authzParams
	get := func(k string) string {
		vals := v[k]
		if len(vals) == 0 {
			return ""
		}
		if p.Bad == "" && len(vals) > 1 {
			p.Bad, p.BadErr = k, aad(90100, k)
		}
		s := vals[0]
		if len(s) > maxParam {
			if p.Bad == "" {
				p.Bad, p.BadErr = k, aad(90100, k)
			}
			return ""
		}
		return s
	}
	p.ClientID = strings.TrimSpace(get("client_id"))
	p.RedirectURI = get("redirect_uri")
	p.ResponseType = get("response_type")
	p.ResponseMode = get("response_mode")
	p.Scope = get("scope")
	p.Resource = get("resource")
	p.State = get("state")
	p.Nonce = get("nonce")
	p.Prompt = get("prompt")
	p.LoginHint = get("login_hint")
	p.DomainHint = get("domain_hint")
	_, p.HasChallenge = v["code_challenge"]
	p.CodeChallenge = get("code_challenge")
	p.CodeChallengeMethod = get("code_challenge_method")
	p.ClientInfo = get("client_info")
	return p
}

// authzReq is a validated authorize request.
type authzReq struct {
	p           authzParams
	ref         TenantRef
	app         *App
	redirectURI string
	platform    Platform
	mode        string
	scopes      Scopes
	prompt      string
	method      string // PKCE method, "" without a challenge
}

// pageOrRedirect is a validation failure: shown on the page (before the
// redirect URI is trusted) or sent back to the client.
type pageOrRedirect struct {
	err  *Error
	page bool
}

// validateAuthorize checks an authorize request in Microsoft's order:
// tenant, client, redirect URI (these fail on the page), then everything
// else (these go back to the redirect URI).
func (e *Emulator) validateAuthorize(r *http.Request, seg string, raw string, v1 bool) (*authzReq, *pageOrRedirect) {
	page := func(err *Error) (*authzReq, *pageOrRedirect) { return nil, &pageOrRedirect{err: err, page: true} }
	if len(raw) > maxQuery {
		return page(aad(90101, "The request URL is too long."))
	}
	v, perr := url.ParseQuery(raw)
	if perr != nil {
		return page(aad(90023, "The request parameters are not valid URL encoding."))
	}
	p := parseAuthorizeParams(v)
	ref, err := e.resolveTenantSegment(seg, e.cloudOf(r))
	if err != nil {
		return page(err)
	}
	if p.Bad == "client_id" || p.Bad == "redirect_uri" {
		return page(p.BadErr)
	}
	if p.ClientID == "" {
		return page(aad(900144, "client_id"))
	}
	app, err := e.FindApp(ref, p.ClientID)
	if err != nil {
		return page(err)
	}
	a := &authzReq{p: p, ref: ref, app: app, redirectURI: p.RedirectURI}
	if a.redirectURI == "" {
		// Microsoft picks a registered URI when none is sent (reference §2.1).
		a.redirectURI = e.firstRedirectURI(app)
		if a.redirectURI == "" {
			return page(aad(500113))
		}
	}
	if a.platform, err = e.ValidateRedirectURI(app, a.redirectURI); err != nil {
		return page(err)
	}
	// From here on errors go back to the client.
	redirect := func(err *Error) (*authzReq, *pageOrRedirect) { return a, &pageOrRedirect{err: err} }
	types := map[string]bool{}
	for _, t := range strings.Fields(p.ResponseType) {
		types[t] = true
	}
	a.mode = "query"
	if types["id_token"] || types["token"] {
		a.mode = "fragment"
	}
	switch p.ResponseMode {
	case "":
	case "query", "fragment", "form_post":
		a.mode = p.ResponseMode
	default:
		return redirect(aad(90100, "response_mode"))
	}
	if p.Bad != "" {
		return redirect(p.BadErr)
	}
	if p.ResponseType == "" {
		return redirect(aad(900144, "response_type"))
	}
	for t := range types {
		if t != "code" && t != "id_token" && t != "token" {
			return redirect(aad(70005, "response type '"+t+"' is not supported."))
		}
	}
	scope := p.Scope
	if v1 && scope == "" && p.Resource != "" {
		scope = strings.TrimRight(p.Resource, "/") + "/.default openid"
	}
	if strings.TrimSpace(scope) == "" {
		return redirect(aad(900144, "scope"))
	}
	if a.scopes, err = ParseScopes(ref.Cloud, scope); err != nil {
		return redirect(err)
	}
	if types["id_token"] {
		if p.Nonce == "" {
			return redirect(aad(90014, "nonce"))
		}
		// The model has no "ID tokens" (implicit/hybrid) switch: it is off,
		// as on a new registration.
		return redirect(aad(700054))
	}
	if types["token"] {
		return redirect(aad(70005, "response type 'token' is not enabled for the app."))
	}
	if p.HasChallenge {
		m := p.CodeChallengeMethod
		switch {
		case p.CodeChallenge == "":
			return redirect(aad(50147))
		case m == "":
			m = "plain"
		case strings.EqualFold(m, "S256"):
			m = "S256"
		case strings.EqualFold(m, "plain"):
			m = "plain"
		default:
			return redirect(aad(90100, "code_challenge_method"))
		}
		if !validChallenge(p.CodeChallenge) {
			return redirect(aad(501491))
		}
		a.method = m
	}
	switch p.Prompt {
	case "", "login", "none", "consent", "select_account":
		a.prompt = p.Prompt
	default:
		return redirect(aad(90023, "Invalid prompt value '"+p.Prompt+"'."))
	}
	return a, nil
}

// validChallenge checks RFC 7636's shape of a code challenge: 43–128
// characters of the unreserved set (an S256 challenge is 43).
func validChallenge(c string) bool {
	if len(c) < 43 || len(c) > 128 {
		return false
	}
	for _, ch := range c {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.ContainsRune("-._~", ch)) {
			return false
		}
	}
	return true
}

// firstRedirectURI returns the registered URI Microsoft would pick when the
// request names none.
func (e *Emulator) firstRedirectURI(a *App) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range []Platform{PlatformPublic, PlatformSPA, PlatformWeb} {
		if l := a.RedirectURIs[p]; len(l) > 0 {
			return l[0]
		}
	}
	return ""
}

// handleAuthorize is GET|POST /{tenant}/oauth2/v2.0/authorize (and the v1
// path): the start of the auth code flow, and the target of its pages'
// forms.
func (e *Emulator) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	v1 := strings.HasSuffix(r.URL.Path, "/oauth2/authorize")
	raw := r.URL.RawQuery
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		form, err := readPageForm(w, r)
		if err != nil {
			e.serveOutcome(w, r, e.errorPage(r, err, ""))
			return
		}
		if form.Has("ctx") {
			e.servePageStep(w, r, form, "authorize")
			return
		}
		raw = form.Encode() // an authorize request sent as a form post
	default:
		w.Header().Set("Allow", "GET, POST")
		e.serveOutcome(w, r, e.errorPage(r, aad(90023, "Unsupported HTTP method "+r.Method+"."), ""))
		return
	}
	fc := flowCtx{Kind: "authorize", Tenant: r.PathValue("tenant"), Query: raw, V1: v1}
	e.serveOutcome(w, r, e.dispatch(r, fc, "", stepInput{}, e.readSession(r)))
}

// authorizeFlow runs one step of the auth code flow.
func (e *Emulator) authorizeFlow(r *http.Request, fc flowCtx, ctx string, in stepInput, sess *session) outcome {
	a, fail := e.validateAuthorize(r, fc.Tenant, fc.Query, fc.V1)
	appName := ""
	if a != nil {
		appName = a.app.Name
	}
	if fail != nil {
		if fail.page {
			return e.errorPage(r, fail.err, appName)
		}
		return outcome{redirect: &redirectOut{uri: a.redirectURI, mode: a.mode, state: a.p.State, err: fail.err}}
	}
	redirectErr := func(err *Error) outcome {
		return outcome{redirect: &redirectOut{uri: a.redirectURI, mode: a.mode, state: a.p.State, err: err}}
	}
	fr := &flowRun{r: r, ref: a.ref, fc: fc, ctx: e.sealFlow(fc, ctx), action: r.URL.Path, appName: a.app.Name,
		tenantName: e.tenantLabel(a.ref), loginHint: a.p.LoginHint, forceLogin: a.prompt == "login",
		pickFirst: a.prompt == "select_account", silent: a.prompt == "none", silentErr: redirectErr, in: in, sess: sess}
	if fr.pickFirst {
		fr.loginHint = ""
	}
	return e.runFlow(fr, func(u *User) outcome {
		missing := e.MissingConsent(u.Tenant, a.app, u, a.scopes)
		if in.Step == "consent" {
			if in.Action != "accept" {
				return redirectErr(aad(65004))
			}
			if in.Org && e.isTenantAdmin(u) {
				e.RecordAdminConsent(u.Tenant, a.app, a.scopes)
			}
			e.RecordUserConsent(u.Tenant, a.app, u, a.scopes)
			return e.issueCode(r, a, u, fr)
		}
		if len(missing) == 0 && a.prompt != "consent" {
			return e.issueCode(r, a, u, fr)
		}
		if a.prompt == "none" {
			return redirectErr(errOAuth(aad(65001, a.app.ClientID, a.app.Name), "consent_required"))
		}
		if len(missing) > 0 && !e.isTenantAdmin(u) && e.userConsentDisabled(u.Tenant) {
			return e.errorPage(r, aad(90094, a.app.Name), a.app.Name)
		}
		d := e.flowPage(fr, "Permissions requested")
		d.User = u.UPN
		d.Perms = consentLines(a.scopes, missing, a.prompt == "consent")
		d.OrgConsent = e.isTenantAdmin(u)
		return outcome{page: "consent", data: d}
	})
}

// issueCode mints the authorization code and sends the browser back.
func (e *Emulator) issueCode(r *http.Request, a *authzReq, u *User, fr *flowRun) outcome {
	code := e.IssueAuthCode(AuthCodeRequest{Tenant: u.Tenant, PathTenant: a.ref.Segment, App: a.app, User: u,
		RedirectURI: a.redirectURI, Platform: a.platform, Scopes: a.scopes, CodeChallenge: a.p.CodeChallenge,
		CodeChallengeMethod: a.method, Nonce: a.p.Nonce})
	params := url.Values{"code": {code}}
	if a.p.State != "" {
		params.Set("state", a.p.State)
	}
	params.Set("session_state", derivedGUID("session", u.ObjectID, fr.ctx))
	if a.p.ClientInfo == "1" {
		ci, _ := json.Marshal(map[string]string{"uid": u.ObjectID, "utid": u.Tenant.ID})
		params.Set("client_info", base64.RawURLEncoding.EncodeToString(ci))
	}
	return outcome{redirect: &redirectOut{uri: a.redirectURI, mode: a.mode, params: params}}
}

// consentLines lists what the consent page asks for: the missing delegated
// permissions (all requested ones with prompt=consent) and the OIDC ones.
func consentLines(s Scopes, missing []string, all bool) []string {
	var out []string
	if all {
		for _, rs := range s.Resources {
			if rs.Default {
				out = append(out, rs.Prefix()+".default")
			}
			for _, p := range rs.Perms {
				out = append(out, rs.Prefix()+p)
			}
		}
	} else {
		out = append(out, missing...)
	}
	for _, o := range s.OIDC {
		out = append(out, oidcLine(o))
	}
	return out
}

func oidcLine(o string) string {
	switch o {
	case "openid":
		return "openid (Sign you in)"
	case "profile":
		return "profile (View your basic profile)"
	case "email":
		return "email (View your email address)"
	case "offline_access":
		return "offline_access (Maintain access to data you have given it access to)"
	}
	return o
}

// tenantLabel is how pages name the tenant of the request.
func (e *Emulator) tenantLabel(ref TenantRef) string {
	if ref.Tenant != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		return ref.Tenant.Name
	}
	return ref.Segment
}

// isTenantAdmin reports whether u may grant admin consent for its tenant.
func (e *Emulator) isTenantAdmin(u *User) bool { return e.IsAdmin(u) }

// userConsentDisabled reports whether t's users may not consent to apps
// themselves (Entra "User consent for applications: Do not allow").
func (e *Emulator) userConsentDisabled(t *Tenant) bool { return e.UserConsentDisabled(t) }
