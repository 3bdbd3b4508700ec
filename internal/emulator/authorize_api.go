package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
)

// SignInRequest is the body of POST /_emulator/signin and
// /_emulator/adminconsent: a browser's visit of an authorize or admin
// consent URL, without the browser. The same steps run as on the HTML pages.
type SignInRequest struct {
	// URL is the full authorize or adminconsent URL
	// (…/{tenant}/oauth2/v2.0/authorize?…, …/{tenant}/oauth2/authorize?…,
	// …/{tenant}/v2.0/adminconsent?…, …/{tenant}/adminconsent?…).
	URL string `json:"url"`
	// Tenant and Params are the alternative to URL: the {tenant} segment and
	// the query parameters (v2 authorize for /_emulator/signin, v2 admin
	// consent for /_emulator/adminconsent).
	Tenant string            `json:"tenant,omitempty"`
	Params map[string]string `json:"params,omitempty"`
	// Username and Password are typed into the sign-in page (when the
	// flow shows it).
	Username string `json:"username"`
	Password string `json:"password"`
	// Consent is the consent page's button: "accept" (default) or "decline".
	Consent string `json:"consent,omitempty"`
	// ConsentForOrganization ticks "consent on behalf of your organization"
	// (admins only).
	ConsentForOrganization bool `json:"consent_for_organization,omitempty"`
	// MFA is the approval page's button for MFA users: "approve" (default)
	// or "deny".
	MFA string `json:"mfa,omitempty"`
}

// SignInResult is where the browser would have been sent, or the page the
// flow stopped on.
type SignInResult struct {
	// RedirectURL is the full URL the browser is sent to (for form_post:
	// the URL the form posts to; the fields are in Params).
	RedirectURL  string            `json:"redirect_url,omitempty"`
	ResponseMode string            `json:"response_mode,omitempty"`
	Params       map[string]string `json:"params,omitempty"`
	Code         string            `json:"code,omitempty"`
	State        string            `json:"state,omitempty"`
	Error        string            `json:"error,omitempty"`
	Description  string            `json:"error_description,omitempty"`
	ErrorCodes   []int             `json:"error_codes,omitempty"`
	// Page names the page the flow stopped on when there is no redirect
	// ("error", or "signin" when the credentials were refused).
	Page string `json:"page,omitempty"`
}

// handleAdminSignIn serves POST /_emulator/signin and /_emulator/adminconsent.
func (e *Emulator) handleAdminSignIn(w http.ResponseWriter, r *http.Request) {
	var req SignInRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxPageForm))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
		return
	}
	kind := "authorize"
	if strings.HasSuffix(r.URL.Path, "/adminconsent") {
		kind = "adminconsent"
	}
	res, err := e.SignIn(r, kind, req)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	status := http.StatusOK
	if res.Page != "" {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, res)
}

type apiError string

func (e apiError) Error() string { return string(e) }

// SignIn runs a browser flow for req without a browser: the request's URL
// is visited, the sign-in page filled in, MFA approved or denied, the
// consent page accepted or declined, exactly as the HTML pages do. kind is
// "authorize" or "adminconsent" and applies when req has no URL. base is
// the request the admin call came in on (its host picks the cloud when the
// URL has none); nil stands for a loopback request.
func (e *Emulator) SignIn(base *http.Request, kind string, req SignInRequest) (SignInResult, error) {
	if base == nil {
		base, _ = http.NewRequestWithContext(context.Background(), http.MethodGet, "http://127.0.0.1/", nil)
	}
	u := &url.URL{Path: "/" + req.Tenant + "/oauth2/v2.0/authorize"}
	if kind == "adminconsent" {
		u.Path = "/" + req.Tenant + "/v2.0/adminconsent"
	}
	if req.URL != "" {
		var err error
		if u, err = url.Parse(req.URL); err != nil || len(req.URL) > maxQuery {
			return SignInResult{}, apiError("url: not a valid URL")
		}
	} else {
		if req.Tenant == "" || strings.Contains(req.Tenant, "/") {
			return SignInResult{}, apiError("give url, or tenant and params")
		}
		q := url.Values{}
		for k, v := range req.Params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	var fc flowCtx
	switch {
	case len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "authorize":
		fc.Kind = "authorize"
	case len(parts) == 3 && parts[1] == "oauth2" && parts[2] == "authorize":
		fc.Kind, fc.V1 = "authorize", true
	case len(parts) == 3 && parts[1] == "v2.0" && parts[2] == "adminconsent":
		fc.Kind = "adminconsent"
	case len(parts) == 2 && parts[1] == "adminconsent":
		fc.Kind = "adminconsent_v1"
	default:
		return SignInResult{}, apiError("url: not an authorize or adminconsent path: " + u.Path)
	}
	fc.Tenant, fc.Query = parts[0], u.RawQuery
	r := base.Clone(base.Context())
	r.Method = http.MethodGet
	r.URL = u
	if u.Host != "" {
		r.Host = u.Host
	}
	r.Header = http.Header{}
	r.SetPathValue("tenant", fc.Tenant)

	var sess *session
	in := stepInput{}
	ctx := ""
	triedPassword := false
	for range 8 {
		o := e.dispatch(r, fc, ctx, in, sess)
		if o.session != nil {
			sess = o.session
		}
		if o.redirect != nil {
			return e.redirectResult(r, o.redirect), nil
		}
		if o.data != nil && o.data.Ctx != "" {
			ctx = o.data.Ctx
		}
		switch o.page {
		case "signin":
			if triedPassword {
				return SignInResult{Page: "signin", Error: "invalid_grant", Description: o.data.Inline}, nil
			}
			triedPassword = true
			in = stepInput{Step: "signin", Username: req.Username, Password: req.Password}
		case "mfa":
			in = stepInput{Step: "mfa", PW: o.data.PW, Action: "approve"}
			if req.MFA != "" {
				in.Action = req.MFA
			}
		case "pick":
			in = stepInput{Step: "pick", Action: "continue"}
		case "consent":
			in = stepInput{Step: "consent", Action: "accept", Org: req.ConsentForOrganization}
			if req.Consent != "" && req.Consent != "accept" {
				in.Action = "cancel"
			}
		default:
			res := SignInResult{Page: o.page}
			if o.err != nil {
				b := e.envelope(r, o.err)
				res.Error, res.Description, res.ErrorCodes = b.Error, b.ErrorDescription, b.ErrorCodes
			}
			return res, nil
		}
	}
	return SignInResult{}, apiError("the sign-in did not finish")
}

// redirectResult renders ro with the same functions the HTML path uses and
// reads back where the browser would go.
func (e *Emulator) redirectResult(r *http.Request, ro *redirectOut) SignInResult {
	mode := ro.mode
	if mode == "form_post" {
		mode = "query" // render as a URL to read the fields back
	}
	rec := httptest.NewRecorder()
	if ro.err != nil {
		e.WriteRedirectError(rec, r, ro.uri, mode, ro.state, ro.err, ro.params)
	} else {
		e.WriteRedirect(rec, r, ro.uri, mode, ro.params)
	}
	loc := rec.Header().Get("Location")
	res := SignInResult{RedirectURL: loc, ResponseMode: ro.mode, Params: map[string]string{}}
	lu, err := url.Parse(loc)
	if err != nil {
		return res
	}
	var vals url.Values
	if mode == "fragment" {
		vals, _ = url.ParseQuery(lu.Fragment)
	} else {
		vals = lu.Query()
	}
	if ro.mode == "form_post" {
		target, _ := url.Parse(ro.uri)
		if target != nil && target.Path == "" {
			target.Path = "/"
		}
		if target != nil {
			res.RedirectURL = target.String()
		}
		if target != nil { // the target's own query is not posted
			for k := range target.Query() {
				if ro.params.Get(k) == "" {
					vals.Del(k)
				}
			}
		}
	}
	for k := range vals {
		res.Params[k] = vals.Get(k)
	}
	res.Code, res.State, res.Error, res.Description = vals.Get("code"), vals.Get("state"), vals.Get("error"), vals.Get("error_description")
	if ro.err != nil && ro.err.Code != 0 {
		res.ErrorCodes = []int{ro.err.Code}
	}
	return res
}
