package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// handleLogout is GET|POST /{tenant}/oauth2/v2.0/logout (reference §2.9):
// it ends the emulator's browser session (tokens stay valid, as at
// Microsoft) and sends the browser to post_logout_redirect_uri when that URI
// is registered (for client_id if given, else for any app), else shows a
// signed-out page.
func (e *Emulator) handleLogout(w http.ResponseWriter, r *http.Request) {
	if _, err := e.ResolveTenant(r, e.cloudOf(r)); err != nil {
		e.serveOutcome(w, r, e.errorPage(r, err, ""))
		return
	}
	var v url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if len(r.URL.RawQuery) > maxQuery {
			e.serveOutcome(w, r, e.errorPage(r, aad(90101, "The request URL is too long."), ""))
			return
		}
		v = r.URL.Query()
	case http.MethodPost:
		form, err := readPageForm(w, r)
		if err != nil {
			e.serveOutcome(w, r, e.errorPage(r, err, ""))
			return
		}
		v = form
	default:
		w.Header().Set("Allow", "GET, POST")
		e.serveOutcome(w, r, e.errorPage(r, aad(90023, "Unsupported HTTP method "+r.Method+"."), ""))
		return
	}
	http.SetCookie(w, e.sessionCookieFor(r, nil))
	target := v.Get("post_logout_redirect_uri")
	if target != "" && len(target) <= maxParam && e.logoutURIRegistered(strings.TrimSpace(v.Get("client_id")), target) {
		u, err := url.Parse(target)
		if err == nil {
			if st := v.Get("state"); st != "" && len(st) <= maxParam {
				q := u.Query()
				q.Set("state", st)
				u.RawQuery = q.Encode()
			}
			http.Redirect(w, r, u.String(), http.StatusFound)
			return
		}
	}
	d := e.newPageData(r, "Sign out")
	d.Message = "You signed out of your account."
	d.Detail = "It's a good idea to close all browser windows."
	if target != "" {
		d.Detail += " The post_logout_redirect_uri is not registered for the application, so you were not sent back to it."
	}
	e.writePage(w, "message", http.StatusOK, d)
}

// logoutURIRegistered reports whether uri is a registered redirect URI of
// app clientID, or of any app when clientID is empty.
func (e *Emulator) logoutURIRegistered(clientID, uri string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.model.Apps {
		if clientID != "" && !strings.EqualFold(a.ClientID, clientID) {
			continue
		}
		for _, l := range a.RedirectURIs {
			for _, reg := range l {
				if redirectMatches(reg, uri) {
					return true
				}
			}
		}
	}
	return false
}
