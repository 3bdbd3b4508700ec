package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// handleAdminConsent is GET /{tenant}/v2.0/adminconsent (reference §2.7):
// an admin signs in, sees the permissions and grants them for the whole
// tenant. POST is the target of its pages' forms.
func (e *Emulator) handleAdminConsent(w http.ResponseWriter, r *http.Request) {
	e.adminConsent(w, r, "adminconsent")
}

// handleAdminConsentV1 is the v1-style GET /{tenant}/adminconsent: no scope,
// consent to everything the app registers; its own redirect parameters.
func (e *Emulator) handleAdminConsentV1(w http.ResponseWriter, r *http.Request) {
	e.adminConsent(w, r, "adminconsent_v1")
}

func (e *Emulator) adminConsent(w http.ResponseWriter, r *http.Request, kind string) {
	if r.Method == http.MethodPost {
		form, err := readPageForm(w, r)
		if err != nil {
			e.serveOutcome(w, r, e.errorPage(r, err, ""))
			return
		}
		e.servePageStep(w, r, form, kind)
		return
	}
	fc := flowCtx{Kind: kind, Tenant: r.PathValue("tenant"), Query: r.URL.RawQuery}
	e.serveOutcome(w, r, e.dispatch(r, fc, "", stepInput{}, e.readSession(r)))
}

// consentReq is a validated admin consent request.
type consentReq struct {
	ref         TenantRef
	app         *App
	redirectURI string
	state       string
	scopes      Scopes
	v1          bool
}

// validateAdminConsent checks tenant (not common or consumers), client and
// redirect URI (failing on the page), then scope (redirected).
func (e *Emulator) validateAdminConsent(r *http.Request, fc flowCtx) (*consentReq, *pageOrRedirect) {
	page := func(err *Error) (*consentReq, *pageOrRedirect) { return nil, &pageOrRedirect{err: err, page: true} }
	if len(fc.Query) > maxQuery {
		return page(aad(90101, "The request URL is too long."))
	}
	v, perr := url.ParseQuery(fc.Query)
	if perr != nil {
		return page(aad(90023, "The request parameters are not valid URL encoding."))
	}
	for k, vals := range v {
		if len(vals) > 1 || len(vals[0]) > maxParam {
			return page(aad(90100, k))
		}
	}
	c := &consentReq{v1: fc.Kind == "adminconsent_v1", state: v.Get("state")}
	ref, err := e.resolveTenantSegment(fc.Tenant, e.cloudOf(r))
	if err != nil {
		return page(err)
	}
	if ref.Kind == TenantCommon || ref.Kind == TenantConsumers {
		return page(aad(90130))
	}
	c.ref = ref
	cid := strings.TrimSpace(v.Get("client_id"))
	if cid == "" {
		return page(aad(900144, "client_id"))
	}
	if c.app, err = e.FindApp(ref, cid); err != nil {
		return page(err)
	}
	c.redirectURI = v.Get("redirect_uri")
	if c.redirectURI == "" {
		if !c.v1 {
			return page(aad(900144, "redirect_uri"))
		}
		if c.redirectURI = e.firstRedirectURI(c.app); c.redirectURI == "" {
			return page(aad(500113))
		}
	}
	if _, err := e.ValidateRedirectURI(c.app, c.redirectURI); err != nil {
		return page(err)
	}
	if !c.v1 {
		raw := v.Get("scope")
		if strings.TrimSpace(raw) == "" {
			return c, &pageOrRedirect{err: aad(900144, "scope")}
		}
		if c.scopes, err = ParseScopes(ref.Cloud, raw); err != nil {
			return c, &pageOrRedirect{err: err}
		}
	}
	return c, nil
}

// adminConsentFlow runs one step of the admin consent pages.
func (e *Emulator) adminConsentFlow(r *http.Request, fc flowCtx, ctx string, in stepInput, sess *session) outcome {
	c, fail := e.validateAdminConsent(r, fc)
	extra := url.Values{}
	if fc.Kind == "adminconsent" {
		extra.Set("admin_consent", "True")
	}
	redirectErr := func(err *Error) outcome {
		return outcome{redirect: &redirectOut{uri: c.redirectURI, mode: "query", state: c.state, params: extra, err: err}}
	}
	if fail != nil {
		if fail.page {
			name := ""
			if c != nil {
				name = c.app.Name
			}
			return e.errorPage(r, fail.err, name)
		}
		return redirectErr(fail.err)
	}
	fr := &flowRun{r: r, ref: c.ref, fc: fc, ctx: e.sealFlow(fc, ctx), action: r.URL.Path, appName: c.app.Name,
		tenantName: e.tenantLabel(c.ref), in: in, sess: sess}
	return e.runFlow(fr, func(u *User) outcome {
		if !e.isTenantAdmin(u) {
			return redirectErr(errOAuth(aad(90094, c.app.Name), "consent_required"))
		}
		if in.Step == "consent" {
			if in.Action != "accept" {
				if c.v1 {
					p := url.Values{"error": {"permission_denied"}, "error_description": {"The admin canceled the request"}}
					if c.state != "" {
						p.Set("state", c.state)
					}
					return outcome{redirect: &redirectOut{uri: c.redirectURI, mode: "query", params: p}}
				}
				return redirectErr(aad(65004))
			}
			granted := e.RecordAdminConsent(u.Tenant, c.app, c.scopes)
			p := url.Values{"admin_consent": {"True"}, "tenant": {u.Tenant.ID}}
			if !c.v1 {
				p.Set("scope", strings.Join(granted, " "))
			}
			if c.state != "" {
				p.Set("state", c.state)
			}
			return outcome{redirect: &redirectOut{uri: c.redirectURI, mode: "query", params: p}}
		}
		d := e.flowPage(fr, "Permissions requested")
		d.Admin, d.User = true, u.UPN
		d.Perms = e.adminConsentLines(c.app, c.scopes, u.Tenant.Cloud)
		return outcome{page: "consent", data: d}
	})
}

// adminConsentLines lists what an admin consents to: for .default or the v1
// endpoint every permission the app registers (delegated and application),
// for dynamic scopes those scopes.
func (e *Emulator) adminConsentLines(a *App, s Scopes, c *Cloud) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	static := func(res *Resource, prefix string) {
		for _, p := range a.Delegated[res.AppID] {
			out = append(out, prefix+p+" (delegated)")
		}
		for _, p := range a.AppRoles[res.AppID] {
			out = append(out, prefix+p+" (application)")
		}
	}
	if len(s.Resources) == 0 {
		for _, res := range Resources {
			static(res, res.DefaultIdentifier(c)+"/")
		}
	}
	for _, rs := range s.Resources {
		if rs.Default {
			static(rs.Resource, rs.Prefix())
			continue
		}
		for _, p := range rs.Perms {
			out = append(out, rs.Prefix()+p+" (delegated)")
		}
	}
	for _, o := range s.OIDC {
		out = append(out, oidcLine(o))
	}
	return out
}
