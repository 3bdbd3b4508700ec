package emulator

// AADSTS codes the browser-facing endpoints answer with that the core table
// (errors.go) does not carry. They are added only where the table has no row,
// so a wording the core adds later wins. Wording from Microsoft's
// reference-error-codes page and captured pages; "emulator" marks our own.
func init() {
	add := func(code int, d errDef) {
		if _, ok := aadsts[code]; !ok {
			aadsts[code] = d
		}
	}
	add(700054, errDef{"unsupported_response_type", 400, "response_type 'id_token' is not enabled for the application.", ""})
	add(70005, errDef{"unsupported_response_type", 400, "The app returned an unsupported response type due to the following reasons: %s", ""})
	add(501491, errDef{"invalid_request", 400, "Invalid size of Code_Challenge parameter.", ""})
	add(50147, errDef{"invalid_request", 400, "The size of the code challenge parameter is not valid.", ""})
	add(50058, errDef{"login_required", 400, "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's session were not sent in the request to Azure AD.", ""})
	add(90094, errDef{"consent_required", 400, "%s needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.", ""})
	add(500121, errDef{"access_denied", 400, "Authentication failed during strong authentication request.", ""})
	add(90130, errDef{"invalid_request", 400, "Admin consent is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.", ""}) // emulator wording
}

// errOAuth returns a copy of err answering with another OAuth error value,
// for the places where /authorize reports a core code under the OIDC name
// (consent_required, interaction_required).
func errOAuth(err *Error, oauth string) *Error {
	c := *err
	c.OAuth = oauth
	return &c
}

// errStaleForm answers a page form whose signed context or CSRF token does
// not verify (expired, tampered with, or posted from another browser). It
// carries no AADSTS number: Microsoft's wording for this is not documented.
func errStaleForm() *Error {
	return &Error{OAuth: "invalid_request", Status: 400,
		Description: "The sign-in form expired or was not sent by this browser. Start the sign-in again."}
}
