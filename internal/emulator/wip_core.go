package emulator

import "net/http"

// Temporary: replaced by token.go, devicecode.go and admin.go in step 2.

func (e *Emulator) handleToken(w http.ResponseWriter, r *http.Request)      { e.notYet(w, r) }
func (e *Emulator) handleTokenV1(w http.ResponseWriter, r *http.Request)    { e.notYet(w, r) }
func (e *Emulator) handleDeviceCode(w http.ResponseWriter, r *http.Request) { e.notYet(w, r) }
func (e *Emulator) adminRoutes(mux *http.ServeMux)                          {}

// RefreshToken is an issued refresh token.
type RefreshToken struct{}

// AccessToken is an issued access token.
type AccessToken struct{}

// Demo returns the scenario's demo values (tenant, client ids, users).
func (e *Emulator) Demo() DemoValues {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.model.Demo
}
