package emulator

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// stepInput is what one page form (or the admin API on its behalf) submits.
type stepInput struct {
	Step     string // "" (first request), signin, mfa, pick, consent, confirm
	Username string
	Password string
	Action   string // consent: accept|cancel; mfa: approve|deny; pick: continue|other; confirm: continue|cancel
	PW       string // sealed pwToken (MFA page)
	Org      bool   // "consent on behalf of your organization" (admins)
	Code     string // device page: the user code typed
}

// outcome is the answer to one step: a page, or a redirect to the client.
type outcome struct {
	page     string
	status   int
	data     *pageData
	err      *Error // the error an error page shows (the admin API reports it)
	redirect *redirectOut
	session  *session // set this session cookie
}

// redirectOut is a redirect back to the client's redirect URI.
type redirectOut struct {
	uri    string
	mode   string // query | fragment | form_post
	state  string
	params url.Values // success parameters, or extra ones (admin_consent) with err
	err    *Error
}

// flowRun is one request's view of a browser flow: what the shared sign-in
// steps need to know.
type flowRun struct {
	r          *http.Request
	ref        TenantRef
	fc         flowCtx
	ctx        string // sealed fc
	action     string // path the forms post to
	appName    string
	tenantName string
	loginHint  string
	forceLogin bool // prompt=login: ignore the session on the first step
	pickFirst  bool // prompt=select_account: show the account picker first
	silent     bool // prompt=none: never show a page
	silentErr  func(*Error) outcome
	in         stepInput
	sess       *session
	newSess    *session
}

// page returns page data with the flow's context filled in.
func (e *Emulator) flowPage(fr *flowRun, title string) *pageData {
	d := e.newPageData(fr.r, title)
	d.AppName, d.Tenant, d.Action, d.Ctx = fr.appName, fr.tenantName, fr.action, fr.ctx
	return d
}

// errorPage is Microsoft's "Sorry, but we're having trouble signing you in"
// page with the AADSTS code and the troubleshooting details.
func (e *Emulator) errorPage(r *http.Request, err *Error, appName string) outcome {
	d := e.newPageData(r, "Sign in")
	d.AppName = appName
	d.Err = pageErrOf(err)
	status := err.Status
	if status < 400 {
		status = http.StatusBadRequest
	}
	e.logger.Debug("emulator error page", "path", r.URL.Path, "error", err.OAuth, "aadsts", err.Code)
	return outcome{page: "error", status: status, data: d, err: err}
}

func (e *Emulator) signinPage(fr *flowRun, username, inline string) outcome {
	d := e.flowPage(fr, "Sign in to your account")
	d.Username, d.Inline = username, inline
	return outcome{page: "signin", data: d}
}

func (e *Emulator) mfaPage(fr *flowRun, u *User) outcome {
	d := e.flowPage(fr, "Approve sign in request")
	d.User = u.UPN
	d.PW = e.seal("pw", pwToken{OID: u.ObjectID, Flow: e.mac("flowref", fr.ctx), Issued: e.now().Unix()})
	return outcome{page: "mfa", data: d}
}

func (e *Emulator) pickPage(fr *flowRun, u *User) outcome {
	d := e.flowPage(fr, "Pick an account")
	d.User = u.UPN
	return outcome{page: "pick", data: d}
}

// authenticate runs the sign-in steps every flow shares: session reuse,
// username + password, MFA approval, account picker. It returns the
// signed-in user, or the page to show next.
func (e *Emulator) authenticate(fr *flowRun) (*User, *outcome) {
	in := fr.in
	now := e.now()
	stop := func(o outcome) (*User, *outcome) { return nil, &o }
	switch in.Step {
	case "signin":
		u, err := e.FindUser(fr.ref, in.Username)
		if err != nil {
			return stop(e.signinPage(fr, in.Username, "We couldn't find an account with that username. "+pageErrOf(err).Code+": "+err.Description))
		}
		if err := e.CheckPassword(u, in.Password); err != nil {
			return stop(e.signinPage(fr, in.Username, "Your account or password is incorrect. "+pageErrOf(err).Code+": "+err.Description))
		}
		if err := e.CheckSignIn(u, true, ""); err != nil {
			return stop(e.errorPage(fr.r, err, fr.appName))
		}
		if e.mfaRequired(u) {
			return stop(e.mfaPage(fr, u))
		}
		fr.newSess = &session{OID: u.ObjectID, AuthTime: now.UnixNano()}
		return u, nil
	case "mfa":
		var pt pwToken
		if !e.unseal("pw", in.PW, &pt) || pt.Flow != e.mac("flowref", fr.ctx) || now.Sub(time.Unix(pt.Issued, 0)) > mfaLifetime {
			return stop(e.errorPage(fr.r, errStaleForm(), fr.appName))
		}
		u := e.userByOID(pt.OID)
		if u == nil {
			return stop(e.errorPage(fr.r, errStaleForm(), fr.appName))
		}
		if in.Action != "approve" {
			return stop(e.errorPage(fr.r, aad(500121), fr.appName))
		}
		fr.newSess = &session{OID: u.ObjectID, AuthTime: now.UnixNano(), MFA: true}
		return u, nil
	case "pick":
		if in.Action == "other" {
			return stop(e.signinPage(fr, "", ""))
		}
	}
	// The first request, or a step after sign-in: the session decides.
	s := fr.sess
	if in.Step == "" && fr.forceLogin {
		s = nil
	}
	if s != nil {
		if u := e.userByOID(s.OID); u != nil && !e.sessionRevoked(u, s.AuthTime) {
			if _, err := e.FindUser(fr.ref, u.UPN); err == nil {
				if err := e.CheckSignIn(u, true, ""); err != nil {
					if fr.silent {
						return stop(fr.silentErr(errOAuth(err, "interaction_required")))
					}
					return stop(e.errorPage(fr.r, err, fr.appName))
				}
				if e.mfaRequired(u) && !s.MFA {
					if fr.silent {
						return stop(fr.silentErr(errOAuth(aad(50076, GraphAppID), "interaction_required")))
					}
					return stop(e.mfaPage(fr, u))
				}
				if in.Step == "" && fr.loginHint != "" && !strings.EqualFold(strings.TrimSpace(fr.loginHint), u.UPN) {
					// A hint naming another account than the session's: that
					// account has to sign in.
					if fr.silent {
						return stop(fr.silentErr(aad(50058)))
					}
					return stop(e.signinPage(fr, fr.loginHint, ""))
				}
				if in.Step == "" && fr.pickFirst {
					return stop(e.pickPage(fr, u))
				}
				return u, nil
			}
		}
	}
	if fr.silent {
		return stop(fr.silentErr(aad(50058)))
	}
	return stop(e.signinPage(fr, fr.loginHint, ""))
}

// runFlow authenticates and then runs after with the user; a fresh session
// rides along with whatever comes next.
func (e *Emulator) runFlow(fr *flowRun, after func(u *User) outcome) outcome {
	u, o := e.authenticate(fr)
	if o == nil {
		x := after(u)
		o = &x
	}
	if fr.newSess != nil && o.session == nil {
		o.session = fr.newSess
	}
	return *o
}

// dispatch runs one step of the flow fc describes. ctx is fc sealed ("" on
// the first request).
func (e *Emulator) dispatch(r *http.Request, fc flowCtx, ctx string, in stepInput, sess *session) outcome {
	switch fc.Kind {
	case "authorize":
		return e.authorizeFlow(r, fc, ctx, in, sess)
	case "device":
		return e.deviceFlow(r, fc, ctx, in, sess)
	case "adminconsent", "adminconsent_v1":
		return e.adminConsentFlow(r, fc, ctx, in, sess)
	}
	return e.errorPage(r, errStaleForm(), "")
}

// sealFlow seals fc (stamping its start time) unless ctx already is it.
func (e *Emulator) sealFlow(fc flowCtx, ctx string) string {
	if ctx != "" {
		return ctx
	}
	fc.Issued = e.now().Unix()
	return e.seal("flow", fc)
}

// ---- HTML front end ----

// readPageForm reads a POSTed page form with a capped body.
func readPageForm(w http.ResponseWriter, r *http.Request) (url.Values, *Error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxPageForm)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, aad(90101, "The limit is 64 KiB.")
		}
		return nil, aad(90023, "The form could not be parsed.")
	}
	return r.PostForm, nil
}

// readStep verifies a page form: its signed flow context (not expired) and
// its CSRF token against this browser's cookie.
func (e *Emulator) readStep(r *http.Request, form url.Values) (flowCtx, string, stepInput, *Error) {
	var fc flowCtx
	ctx := form.Get("ctx")
	if !e.unseal("flow", ctx, &fc) || e.now().Sub(time.Unix(fc.Issued, 0)) > flowLifetime {
		return fc, "", stepInput{}, errStaleForm()
	}
	c, err := r.Cookie(browserCookie)
	if err != nil || !hmacEqual(form.Get("csrf"), e.csrfFor(c.Value, ctx)) {
		return fc, "", stepInput{}, errStaleForm()
	}
	in := stepInput{Step: form.Get("step"), Username: form.Get("login"), Password: form.Get("passwd"),
		Action: form.Get("action"), PW: form.Get("pw"), Org: form.Get("org") != "", Code: form.Get("otc")}
	return fc, ctx, in, nil
}

func hmacEqual(a, b string) bool {
	if len(a) != len(b) || a == "" {
		return false
	}
	var v byte
	for i := 0; i < len(a); i++ {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// servePageStep handles a POSTed page form of any flow.
func (e *Emulator) servePageStep(w http.ResponseWriter, r *http.Request, form url.Values, kinds ...string) {
	fc, ctx, in, err := e.readStep(r, form)
	ok := err == nil
	if ok {
		ok = false
		for _, k := range kinds {
			ok = ok || fc.Kind == k
		}
		if fc.Tenant != "" && fc.Tenant != r.PathValue("tenant") {
			ok = false
		}
	}
	if !ok {
		e.serveOutcome(w, r, e.errorPage(r, errStaleForm(), ""))
		return
	}
	e.serveOutcome(w, r, e.dispatch(r, fc, ctx, in, e.readSession(r)))
}

// serveOutcome writes o: cookies, then the page or the redirect.
func (e *Emulator) serveOutcome(w http.ResponseWriter, r *http.Request, o outcome) {
	bid, isNew := browserID(r)
	if isNew {
		http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: bid, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	}
	if o.session != nil {
		http.SetCookie(w, e.sessionCookieFor(r, o.session))
	}
	if ro := o.redirect; ro != nil {
		if ro.err != nil {
			e.WriteRedirectError(w, r, ro.uri, ro.mode, ro.state, ro.err, ro.params)
		} else {
			e.WriteRedirect(w, r, ro.uri, ro.mode, ro.params)
		}
		return
	}
	if o.data.Ctx != "" {
		o.data.CSRF = e.csrfFor(bid, o.data.Ctx)
	}
	e.writePage(w, o.page, o.status, o.data)
}
