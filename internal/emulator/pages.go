package emulator

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The browser-facing pages (sign-in, MFA approval, account picker, consent,
// device code entry, errors) are plain HTML forms that work without
// JavaScript, so tests drive them over HTTP with a cookie jar and a real
// browser can follow them too. Nothing is kept on the server between two
// pages: each form carries a signed flow context (the original request) and
// a CSRF token bound to the browser cookie, and a signed session cookie says
// who is signed in. Every step re-validates the whole request, so the HTML
// front end and the admin API (one code path) cannot drift apart.

//go:embed templates/*.html
var templateFS embed.FS

// pageNames are the templates in templates/, each rendered inside layout.html.
var pageNames = []string{"signin", "mfa", "pick", "consent", "error", "devicecode", "message"}

var pageTemplates = sync.OnceValue(func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, n := range pageNames {
		m[n] = template.Must(template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return m
})

// Cookie names as Microsoft's login pages use them: ESTSAUTH is the session,
// buid a per-browser id (here: what CSRF tokens are bound to).
const (
	sessionCookie   = "ESTSAUTH"
	browserCookie   = "buid"
	sessionLifetime = 12 * time.Hour
	flowLifetime    = time.Hour
	mfaLifetime     = 10 * time.Minute
	maxPageForm     = 64 << 10 // page forms are tiny; cap what we read
	maxQuery        = 16 << 10 // /authorize query strings (Microsoft caps URLs too)
	maxParam        = 4 << 10  // one parameter value
)

// pageData is what every template sees.
type pageData struct {
	Title      string
	AppName    string
	Tenant     string
	Action     string // form action (path)
	Ctx        string // signed flow context
	CSRF       string
	Username   string
	PW         string // signed password-step token (MFA page)
	Inline     string // inline problem on the sign-in page
	Err        *pageErr
	Perms      []string
	OrgConsent bool // offer "consent on behalf of your organization"
	Admin      bool // admin consent page
	Device     bool // device code confirmation page
	User       string
	Message    string
	Detail     string
	Link       string
	LinkText   string
	Trace      string
	Corr       string
	Timestamp  string
}

// pageErr is an error as the error page shows it.
type pageErr struct {
	Code  string // "AADSTS50011", "" when the error has no number
	Text  string
	OAuth string
}

// newPageData fills the troubleshooting fields every page shows.
func (e *Emulator) newPageData(r *http.Request, title string) *pageData {
	corr := r.Header.Get("client-request-id")
	if !isGUID(corr) {
		corr = newGUID()
	}
	return &pageData{Title: title, Trace: newGUID(), Corr: corr, Timestamp: e.now().UTC().Format(msTimestamp)}
}

// pageErrOf renders err the way Microsoft's error page words it.
func pageErrOf(err *Error) *pageErr {
	pe := &pageErr{Text: err.Description, OAuth: err.OAuth}
	if err.Code != 0 {
		pe.Code = fmt.Sprintf("AADSTS%d", err.Code)
	}
	return pe
}

// writePage renders template name with d.
func (e *Emulator) writePage(w http.ResponseWriter, name string, status int, d *pageData) {
	t := pageTemplates()[name]
	var buf bytes.Buffer
	if t == nil {
		e.logger.Error("emulator page template missing", "page", name)
		http.Error(w, "page template missing", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, d); err != nil {
		e.logger.Error("emulator page render", "page", name, "err", err)
		http.Error(w, "page render failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("x-ms-request-id", d.Trace)
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ---- signing: flow contexts, sessions, CSRF ----

// pageKey derives the HMAC key of one purpose from the emulator's signing
// key, so signed page state needs no server-side storage.
func (e *Emulator) pageKey(purpose string) []byte {
	m := hmac.New(sha256.New, e.signingKey.D.Bytes())
	m.Write([]byte("mailoauth-emulator-pages/" + purpose))
	return m.Sum(nil)
}

func (e *Emulator) mac(purpose, data string) string {
	m := hmac.New(sha256.New, e.pageKey(purpose))
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal returns v as JSON, base64url, with an HMAC for purpose.
func (e *Emulator) seal(purpose string, v any) string {
	b, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + e.mac(purpose, p)
}

// unseal verifies tok for purpose and decodes it into v.
func (e *Emulator) unseal(purpose, tok string, v any) bool {
	if len(tok) > 2*maxQuery {
		return false
	}
	p, sig, ok := strings.Cut(tok, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(e.mac(purpose, p))) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

// flowCtx is the signed context a page form carries: which flow, the
// original request, when it started.
type flowCtx struct {
	Kind     string `json:"k"`           // authorize | device | adminconsent | adminconsent_v1
	Tenant   string `json:"t,omitempty"` // {tenant} path segment
	Query    string `json:"q,omitempty"` // original parameters, URL-encoded
	UserCode string `json:"u,omitempty"` // device flow
	V1       bool   `json:"v1,omitempty"`
	Issued   int64  `json:"i"`
}

// session is the signed-in state in the ESTSAUTH cookie.
type session struct {
	OID      string `json:"o"`
	AuthTime int64  `json:"t"` // Unix nanoseconds
	MFA      bool   `json:"m"` // MFA was done in this session
}

// pwToken carries "password checked" from the sign-in page to the MFA page.
type pwToken struct {
	OID    string `json:"o"`
	Flow   string `json:"f"` // mac of the flow context it belongs to
	Issued int64  `json:"i"`
}

// csrfFor binds a form to a browser id and a flow context.
func (e *Emulator) csrfFor(bid, ctx string) string { return e.mac("csrf", bid+"\x00"+ctx) }

// browserID returns the request's buid cookie, or a new one to set.
func browserID(r *http.Request) (id string, isNew bool) {
	if c, err := r.Cookie(browserCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		return c.Value, false
	}
	return randomToken("", 18), true
}

// readSession returns the valid session of r's cookie, or nil.
func (e *Emulator) readSession(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	var s session
	if !e.unseal("session", c.Value, &s) {
		return nil
	}
	if e.now().Sub(time.Unix(0, s.AuthTime)) > sessionLifetime {
		return nil
	}
	return &s
}

func (e *Emulator) sessionCookieFor(r *http.Request, s *session) *http.Cookie {
	c := &http.Cookie{Name: sessionCookie, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
	if s == nil {
		c.MaxAge = -1
		return c
	}
	c.Value = e.seal("session", s)
	return c
}

// userByOID finds a user by object id.
func (e *Emulator) userByOID(oid string) *User {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model.userByOID(oid)
}

// sessionRevoked reports whether u's sessions issued at authTime were
// revoked since (password change, "revoke sessions" in the admin API), as
// Entra ends browser sessions then too. The core sets TokensValidFrom one
// nanosecond after the revocation instant; a sign-in at that very instant
// (a frozen test clock) counts as after it.
func (e *Emulator) sessionRevoked(u *User, authTime int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return u.TokensValidFrom.After(time.Unix(0, authTime).Add(time.Nanosecond))
}

// mfaRequired reads u's MFA flag under the lock (the admin API flips it).
func (e *Emulator) mfaRequired(u *User) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return u.MFARequired
}

// e2Routes registers the routes of the browser-facing endpoints that the
// core's routes() does not: POST targets of the admin consent pages and the
// admin API's admin-consent twin of /_emulator/signin.
func (e *Emulator) e2Routes(mux *http.ServeMux) {
	e.route(mux, "POST /{tenant}/v2.0/adminconsent", "adminconsent", e.handleAdminConsent)
	e.route(mux, "POST /{tenant}/adminconsent", "adminconsent_v1", e.handleAdminConsentV1)
	e.route(mux, "POST /_emulator/adminconsent", "admin", e.handleAdminSignIn)
}
