package emulator

import (
	"net/http"
)

// handleDevicePage is the emulator's stand-in for
// https://microsoft.com/devicelogin (the verification_uri of the device
// code flow, reference §2.5): enter the code, sign in, confirm the app and
// its permissions, done. Cancel declines the device code, so the polling
// client gets authorization_declined.
func (e *Emulator) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		e.serveOutcome(w, r, e.dispatch(r, flowCtx{Kind: "device"}, "", stepInput{Code: r.URL.Query().Get("otc")}, e.readSession(r)))
	case http.MethodPost:
		form, err := readPageForm(w, r)
		if err != nil {
			e.serveOutcome(w, r, e.errorPage(r, err, ""))
			return
		}
		e.servePageStep(w, r, form, "device")
	default:
		w.Header().Set("Allow", "GET, POST")
		e.serveOutcome(w, r, e.errorPage(r, aad(90023, "Unsupported HTTP method "+r.Method+"."), ""))
	}
}

// deviceFlow runs one step of the device sign-in pages.
func (e *Emulator) deviceFlow(r *http.Request, fc flowCtx, ctx string, in stepInput, sess *session) outcome {
	retry := func(o outcome) outcome {
		o.data.Link, o.data.LinkText = "/devicelogin", "Enter a code again"
		return o
	}
	if fc.UserCode == "" {
		if in.Step != "code" {
			d := e.newPageData(r, "Enter code")
			d.Action, d.Ctx, d.Username = "/devicelogin", e.sealFlow(fc, ctx), in.Code
			return outcome{page: "devicecode", data: d}
		}
		info, err := e.LookupUserCode(in.Code)
		if err != nil {
			return retry(e.errorPage(r, err, ""))
		}
		fc.UserCode, ctx, in = info.UserCode, "", stepInput{}
	}
	info, err := e.LookupUserCode(fc.UserCode)
	if err != nil {
		return retry(e.errorPage(r, err, ""))
	}
	if info.Approved || info.Declined {
		return retry(e.errorPage(r, aad(70000, "The code you entered has already been used."), info.App.Name))
	}
	fr := &flowRun{r: r, ref: info.Ref, fc: fc, ctx: e.sealFlow(fc, ctx), action: "/devicelogin", appName: info.App.Name,
		tenantName: e.tenantLabel(info.Ref), in: in, sess: sess}
	return e.runFlow(fr, func(u *User) outcome {
		if len(e.MissingConsent(u.Tenant, info.App, u, info.Scopes)) > 0 && !e.isTenantAdmin(u) && e.userConsentDisabled(u.Tenant) {
			return e.errorPage(r, aad(90094, info.App.Name), info.App.Name)
		}
		if in.Step == "confirm" {
			d := e.flowPage(fr, "Sign in")
			d.Ctx = ""
			if in.Action != "continue" {
				if err := e.DenyDeviceCode(info.UserCode); err != nil {
					return e.errorPage(r, err, info.App.Name)
				}
				d.Message = "You have declined to sign in to " + info.App.Name + " on your device."
				d.Detail = "The application will not get access. You may now close this window."
				return outcome{page: "message", data: d}
			}
			if err := e.ApproveDeviceCode(info.UserCode, u); err != nil {
				return e.errorPage(r, err, info.App.Name)
			}
			d.Message = "You have signed in to the " + info.App.Name + " application on your device."
			d.Detail = "You may now close this window."
			return outcome{page: "message", data: d}
		}
		d := e.flowPage(fr, "Are you trying to sign in to "+info.App.Name+"?")
		d.Device, d.User = true, u.UPN
		d.Perms = consentLines(info.Scopes, nil, true)
		return outcome{page: "consent", data: d}
	})
}
