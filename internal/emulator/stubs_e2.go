package emulator

import "net/http"

// Temporary stubs for the browser-facing endpoints. E2 deletes this file
// and implements these methods in authorize*.go, devicepage*.go,
// adminconsent*.go and logout*.go.

func (e *Emulator) notYet(w http.ResponseWriter, r *http.Request) {
	e.WriteError(w, r, &Error{OAuth: "temporarily_unavailable", Status: http.StatusNotImplemented,
		Description: "this emulator endpoint is not implemented yet"})
}

func (e *Emulator) handleAuthorize(w http.ResponseWriter, r *http.Request)      { e.notYet(w, r) }
func (e *Emulator) handleDevicePage(w http.ResponseWriter, r *http.Request)     { e.notYet(w, r) }
func (e *Emulator) handleAdminConsent(w http.ResponseWriter, r *http.Request)   { e.notYet(w, r) }
func (e *Emulator) handleAdminConsentV1(w http.ResponseWriter, r *http.Request) { e.notYet(w, r) }
func (e *Emulator) handleLogout(w http.ResponseWriter, r *http.Request)         { e.notYet(w, r) }
func (e *Emulator) handleAdminSignIn(w http.ResponseWriter, r *http.Request)    { e.notYet(w, r) }
