package emulator

import (
	"fmt"
	"net/http"
	"time"
)

// handleDeviceCode is POST /{tenant}/oauth2/v2.0/devicecode (and the v1
// path): it starts a device authorization (reference §2.5). Whether the app
// allows public client flows is checked when polling (7000218), as Entra
// does. verification_uri is the emulator's own device page, because
// https://microsoft.com/devicelogin is not reachable offline.
func (e *Emulator) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	form, aerr := readForm(w, r)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		e.WriteError(w, r, aad(900144, "client_id"))
		return
	}
	cloud := e.cloudOf(r)
	ref, aerr := e.ResolveTenant(r, cloud)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	app, aerr := e.FindApp(ref, clientID)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	raw := form.Get("scope")
	if raw == "" {
		e.WriteError(w, r, aad(900144, "scope"))
		return
	}
	s, aerr := ParseScopes(cloud, raw)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	e.mu.Lock()
	now := e.now()
	dc := &DeviceCode{DeviceCode: randomToken("DAQABAAEAAA", 96), Ref: ref, App: app, Scopes: s, IssuedAt: now,
		ExpiresAt: now.Add(time.Duration(e.model.Settings.DeviceCodeLifetime) * time.Second),
		Interval:  e.model.Settings.DeviceCodeInterval}
	for {
		dc.UserCode = newUserCode()
		if e.userCodes[dc.UserCode] == nil {
			break
		}
	}
	e.deviceCodes[dc.DeviceCode] = dc
	e.userCodes[dc.UserCode] = dc
	lifetime := e.model.Settings.DeviceCodeLifetime
	e.mu.Unlock()
	uri := e.DeviceLoginURL(e.BaseURL(r))
	out := map[string]any{
		"user_code":        dc.UserCode,
		"device_code":      dc.DeviceCode,
		"verification_uri": uri,
		"expires_in":       lifetime,
		"interval":         dc.Interval,
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", uri, dc.UserCode),
	}
	if r.URL.Path == "/"+ref.Segment+"/oauth2/devicecode" { // v1 spells it verification_url
		out["verification_url"] = uri
		delete(out, "verification_uri")
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, out)
}
