package oauth

// aadstsHints is the catalogue of Microsoft Entra errors that mail
// integrations hit, each as "what it means: what to do" (reference §3.2).
// Microsoft says the numbers may change; they are used for hints only,
// never to decide control flow (that uses the OAuth code and suberror).
var aadstsHints = map[int]string{
	7000218: "the app is treated as confidential but sent no secret or certificate: for device code, ROPC or desktop sign-in enable \"Allow public client flows\" in the app registration (Authentication page) and register the redirect under \"Mobile and desktop applications\"; for a web app configure its client secret or certificate",
	700025:  "the app is a public client, so it must not send a secret or certificate: remove the client secret from this account, or move the redirect URI to the Web platform",
	7000215: "the client secret is wrong: you probably pasted the secret's ID instead of its Value (copy the Value column when the secret is created), or the secret was replaced",
	7000222: "the client secret has expired: create a new secret in the app registration (Certificates & secrets) or switch to a certificate",
	700016:  "no application with this client id exists in this tenant: check the client id and tenant, make the app multi-tenant, or have an administrator of this tenant consent to it",
	700027:  "the client assertion's signature is invalid: upload this certificate to the app registration and check the thumbprint header and algorithm",
	50012:   "the client assertion could not be verified: upload this certificate to the app registration (Certificates & secrets)",
	900384:  "the client assertion's JWT signature failed: check that the certificate uploaded to the app matches the private key used",
	700024:  "the client assertion is outside its valid time range: fix this computer's clock (NTP) and retry",
	50048:   "the client assertion's sub does not match its iss: both must be the client id",
	90002:   "the tenant was not found: check the tenant GUID or domain, and the cloud (a tenant in another national cloud is not found in this one)",
	90038:   "the tenant belongs to another national cloud: set the account's cloud (usgov, usgov-dod, china)",
	65001:   "the user or an administrator has not consented to the app's permissions: sign in interactively to consent, or run admin consent for the tenant",
	90094:   "an administrator must consent to this app for the organization (users may not consent to these permissions): run mailoauth consent ACCOUNT as an administrator, or send one the URL from mailoauth consent ACCOUNT --url-only",
	90095:   "an administrator must consent to this app for the organization (admin consent workflow): run mailoauth consent ACCOUNT as an administrator, or send one the URL from mailoauth consent ACCOUNT --url-only",
	65004:   "consent was declined: sign in again and accept the permissions, or ask an administrator",
	650057:  "the requested permission is not in the app registration: add it under API permissions (e.g. Office 365 Exchange Online > IMAP.AccessAsUser.All) and consent again",
	65005:   "the app is misconfigured or lacks admin consent for a requested permission: add the API permission to the registration and grant admin consent",
	650056:  "the app is misconfigured or lacks admin consent for a requested permission: add the API permission to the registration and grant admin consent",
	500011:  "the resource was not found in this tenant: check the scope's resource URL (e.g. https://outlook.office.com) and that the service is licensed there",
	50076:   "multi-factor authentication is required: sign in interactively (device code or browser); a password grant cannot do MFA",
	50079:   "the user must register for multi-factor authentication: sign in interactively to enrol",
	50078:   "the multi-factor authentication has expired: sign in interactively again",
	53003:   "blocked by Conditional Access: an administrator must review the sign-in logs and the Conditional Access policy (device, location, client app)",
	530035:  "blocked by security defaults: use an interactive flow, or an administrator adjusts security defaults",
	70011:   "a scope is invalid: check the scope strings; client credentials accept only <resource>/.default, which cannot be mixed with other scopes",
	700022:  "the scopes name more than one resource: request one resource per token (e.g. Exchange and Graph separately)",
	28000:   "the scopes name more than one resource: request one resource per token (e.g. Exchange and Graph separately)",
	28002:   "a scope is invalid for this code redemption: request scopes of a single resource",
	28003:   "no valid scope was given: request scopes of a single resource",
	700082:  "the refresh token expired after 90 days without use: sign in again",
	700084:  "the single-page-app refresh token reached its 24-hour lifetime: sign in again",
	70008:   "the refresh token or authorization code has expired or been revoked: sign in again (redeem codes within 10 minutes)",
	50173:   "the grant was revoked (password change or sessions revoked): sign in again",
	54005:   "the authorization code was already redeemed: sign in again; a code works once",
	700005:  "the authorization code belongs to another tenant: redeem it at the same tenant it was issued for",
	9002313: "the request was malformed, often a truncated or wrongly decoded authorization code: sign in again and check the pasted URL is complete",
	90014:   "a required field is missing from the request (the description names it)",
	900144:  "a required parameter is missing from the request (the description names it)",
	50011:   "the redirect URI is not registered for the app: register this exact redirect URI (scheme, host, path, case and trailing slash must match; only the port is ignored for localhost)",
	500113:  "the app has no redirect URI: add one of the right platform type (\"Mobile and desktop applications\" for loopback sign-in)",
	9002326: "cross-origin token redemption is only allowed for single-page-app redirects: register the redirect under the right platform and do not send an Origin header",
	9002327: "single-page-app redirects require an Origin header: register the redirect under \"Mobile and desktop applications\" instead",
	50194:   "the app is single-tenant, so /common cannot be used: set the account's tenant to the tenant GUID or domain, or make the app multi-tenant",
	9001023: "this grant type is not supported on /common or /consumers: set the account's tenant to organizations or the tenant GUID or domain",
	90124:   "this resource is not supported on /common or /consumers: set the account's tenant to organizations or the tenant id",
	90130:   "this app is not supported on /common or /consumers: set the account's tenant to organizations or the tenant id",
	9002346: "the app is for personal Microsoft accounts only: use the consumers tenant",
	9002332: "the app is for work or school accounts only: do not use the consumers tenant",
	50020:   "the user is not in this tenant: use the user's own tenant or invite them as a guest",
	50034:   "the user account was not found in this tenant: check the user name and tenant",
	16000:   "the external user has not been added to this tenant: invite the user as a guest",
	50126:   "the user name or password is wrong",
	50053:   "the account is locked after too many attempts, or the IP is blocked: wait or ask an administrator",
	50055:   "the password has expired: change it, then sign in again",
	50057:   "the user account is disabled: ask an administrator",
	50058:   "no signed-in session exists: sign in interactively",
	50105:   "the user is not assigned to this app, which requires assignment: an administrator assigns the user or a group",
	50196:   "a request loop was detected (too many identical requests): cache tokens and stop retrying",
	90055:   "the tenant is throttled: back off and retry later",
	501481:  "the PKCE code verifier does not match: sign in again",
	50147:   "the PKCE code challenge has an invalid size: sign in again",
	501491:  "the PKCE code challenge has an invalid size: sign in again",
	70016:   "the device sign-in is still pending: keep waiting",
	70018:   "the device code is not recognised: start the device sign-in again",
	70019:   "the device code expired before sign-in completed: start again and finish within the time shown",
	90119:   "the user code was empty: start the device sign-in again",
	90120:   "the device sign-in was already completed or declined: start again",
	700054:  "the id_token response type is not enabled for the app: enable ID tokens or do not request id_token",
	70005:   "the response type is not supported for the app: enable it in the app registration or request only code",
	1002016: "TLS 1.0/1.1 or 3DES was used: use TLS 1.2 or newer",
	90023:   "the request is invalid: check its parameters",
	90100:   "a request parameter is empty or invalid: check its parameters",
}

// codeHints covers OAuth error codes that arrive without an AADSTS number
// (any provider), RFC 6749 §5.2 and RFC 8628 §3.5.
var codeHints = map[string]string{
	"invalid_client":          "the client id, secret or certificate is wrong, or the server does not allow this way of authenticating the client",
	"unauthorized_client":     "the app is not allowed to use this grant type: enable it for the client on the server",
	"invalid_grant":           "the grant (code, refresh token or password) is invalid, expired or revoked: sign in again",
	"invalid_scope":           "a scope is invalid or not allowed for this client: check the scope strings",
	"unsupported_grant_type":  "the server does not support this flow for this client",
	"access_denied":           "the sign-in or consent was declined",
	"authorization_declined":  "the sign-in was declined on the device page",
	"expired_token":           "the device code expired before sign-in completed: start again and finish within the time shown",
	"bad_verification_code":   "the device code was not recognised: start the device sign-in again",
	"interaction_required":    "an interactive sign-in is required (MFA, consent or a policy)",
	"login_required":          "an interactive sign-in is required",
	"consent_required":        "consent is required: sign in interactively to consent, or have an administrator grant consent",
	"temporarily_unavailable": "the server is temporarily unavailable: retry later",
	"server_error":            "the server had an internal error: retry later",
	"invalid_request":         "the request is invalid: the description says which parameter",
	"invalid_target":          "the requested resource is invalid or not allowed for this client",
	"permission_denied":       "the administrator cancelled the consent",
}

// hintFor picks the most specific hint: an AADSTS number beats the OAuth
// code; the consent_required suberror beats a bare invalid_grant.
func hintFor(e *Error) string {
	for _, n := range e.AADSTS {
		if h, ok := aadstsHints[n]; ok {
			return h
		}
	}
	if e.SubError == "consent_required" {
		return codeHints["consent_required"]
	}
	if e.HTTPStatus == 429 {
		return hintForStatus(429)
	}
	return codeHints[e.Code]
}
