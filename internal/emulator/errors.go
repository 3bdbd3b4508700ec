package emulator

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Error is one Microsoft identity platform error: an AADSTS code, the OAuth
// error value clients branch on, and the HTTP status. Handlers return it;
// WriteError and WriteRedirectError render it the way Microsoft does
// (reference §3.1).
type Error struct {
	Code        int    // AADSTS number; 0 for errors that carry none
	OAuth       string // error: invalid_grant, invalid_client, …
	Status      int    // HTTP status of the JSON answer
	Description string // text after "AADSTSnnnn: "
	Suberror    string // suberror (consent_required, basic_action, …)
	Claims      string // claims challenge, if any
	RetryAfter  int    // seconds, for 429
}

// Error renders the error as "oauth_error: AADSTSnnnn: text", for logs and
// Go callers (the wire format is the JSON envelope of WriteError).
func (e *Error) Error() string {
	if e.Code == 0 {
		return e.OAuth + ": " + e.Description
	}
	return fmt.Sprintf("%s: AADSTS%d: %s", e.OAuth, e.Code, e.Description)
}

// errDef is one row of the AADSTS table.
type errDef struct {
	oauth    string
	status   int
	text     string // fmt format; arguments are given by the caller
	suberror string
}

// aadsts is the one table of AADSTS codes the emulator answers with: OAuth
// error, HTTP status and Microsoft's wording (reference §3.2, wording from
// reference-error-codes.md and captured responses). Codes marked "emulator"
// in a comment have no documented wording; the text is ours.
var aadsts = map[int]errDef{
	// Client authentication.
	7000218: {"invalid_client", 400, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", ""},
	700025:  {"invalid_client", 400, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.", ""},
	7000215: {"invalid_client", 401, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", ""},
	7000222: {"invalid_client", 401, "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", ""},
	700016:  {"unauthorized_client", 400, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", ""},
	700027:  {"invalid_client", 401, "%s", ""},
	700024:  {"invalid_client", 400, "Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.", ""},
	50048:   {"invalid_client", 400, "Subject mismatches Issuer claim in the client assertion. Subject = '%s', Issuer = '%s'.", ""},
	700021:  {"invalid_client", 400, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .", ""},
	50027:   {"invalid_client", 400, "JWT token is invalid or malformed. %s", ""}, // detail text: emulator
	700023:  {"invalid_client", 400, "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .", ""},
	7000274: {"invalid_client", 400, "Client assertion with jti '%s' has already been used.", ""}, // emulator wording
	90023:   {"invalid_request", 400, "%s", ""},
	// Tenants, apps, audiences.
	90002:   {"invalid_request", 400, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", ""},
	90038:   {"invalid_request", 400, "Tenant '%s' is not present in the '%s' cloud; it belongs to the national cloud '%s'. Use the authority of that cloud.", ""},
	50194:   {"invalid_request", 400, "Application '%s'(%s) is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.", ""},
	9002346: {"invalid_request", 400, "Application '%s'(%s) is configured for use by Microsoft Account users only. Please use the /consumers endpoint to serve this request.", ""},
	9002332: {"invalid_request", 400, "Application '%s'(%s) is configured for use by Azure Active Directory users only. Please do not use the /consumers endpoint to serve this request.", ""},
	9001023: {"invalid_request", 400, "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.", ""},
	50059:   {"invalid_request", 400, "No tenant-identifying information found in either the request or implied by any provided credentials.", ""},
	500011:  {"invalid_resource", 400, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", ""},
	// Users.
	50034: {"invalid_grant", 400, "The user account %s does not exist in the %s directory. To sign into this application, the account must be added to the directory.", ""},
	50126: {"invalid_grant", 400, "Error validating credentials due to invalid username or password.", ""},
	50057: {"invalid_grant", 400, "The user account is disabled.", ""},
	50076: {"invalid_grant", 400, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '%s'.", "basic_action"},
	53003: {"invalid_grant", 400, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "message_only"},
	50020: {"invalid_request", 400, "User account '%s' from identity provider '%s' does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant.", ""},
	// Consent and scopes.
	65001:  {"invalid_grant", 400, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", "consent_required"},
	65004:  {"access_denied", 400, "User declined to consent to access the app.", ""},
	70011:  {"invalid_scope", 400, "The provided value for the input parameter 'scope' is not valid. %s", ""},
	700022: {"invalid_scope", 400, "The provided value for the input parameter scope is not valid because it contains more than one resource. The scope %s is not valid.", ""},
	28000:  {"invalid_scope", 400, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", ""},
	28003:  {"invalid_scope", 400, "Provided value for the input parameter scope cannot be empty when requesting an access token using the provided authorization code. Please specify a valid scope.", ""},
	// Redirect URIs.
	50011:   {"invalid_request", 400, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", ""},
	500113:  {"invalid_request", 400, "No reply address is registered for the application.", ""},
	9002326: {"invalid_request", 400, "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '%s'.", ""},
	9002327: {"invalid_request", 400, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.", ""},
	500112:  {"invalid_grant", 400, "The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.", ""},
	// Codes and grants.
	501481:  {"invalid_grant", 400, "The Code_Verifier does not match the code_challenge supplied in the authorization request.", ""},
	54005:   {"invalid_grant", 400, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.", ""},
	70008:   {"invalid_grant", 400, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.", ""},
	700082:  {"invalid_grant", 400, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.", ""},
	700084:  {"invalid_grant", 400, "The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited lifetime of 1.00:00:00, which cannot be extended. It is now expired and a new sign in request must be sent by the SPA to the sign in page. The token was issued on %s.", ""},
	50173:   {"invalid_grant", 400, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", ""},
	700005:  {"invalid_grant", 400, "Provided Authorization Code is intended to use against other tenant, thus rejected.", ""},
	70000:   {"invalid_grant", 400, "The request was denied because one or more grants are invalid. %s", ""},
	9002313: {"invalid_grant", 400, "Invalid request. Request is malformed or invalid.", ""},
	90014:   {"invalid_request", 400, "The required field '%s' is missing from the credential. Ensure that you have all the necessary parameters for the login request.", ""},
	900144:  {"invalid_request", 400, "The request body must contain the following parameter: '%s'.", ""},
	90100:   {"invalid_request", 400, "%s parameter is empty or not valid.", ""},
	70003:   {"unsupported_grant_type", 400, "The app requested an unsupported grant type '%s'.", ""},
	900561:  {"invalid_request", 400, "The endpoint only accepts POST requests. Received a %s request.", ""},
	// Device flow (reference §2.5).
	70016: {"authorization_pending", 400, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.", ""},
	70018: {"bad_verification_code", 400, "Invalid verification code entered.", ""},
	70019: {"expired_token", 400, "Verification code expired.", ""},
	70020: {"authorization_declined", 400, "The user declined the authorization request.", ""}, // emulator wording
	70021: {"slow_down", 400, "OAuth 2.0 device flow error. Polling too fast, slow down.", ""}, // emulator code and wording; Microsoft documents no slow_down
	// Throttling and service.
	90055: {"temporarily_unavailable", 429, "TenantThrottlingError - There are too many incoming requests. This exception is thrown for blocked tenants.", ""},
	50196: {"invalid_grant", 400, "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.", ""},
	// Request format.
	900021: {"invalid_request", 400, "Requested content type is not supported. %s", ""}, // emulator wording
	90101:  {"invalid_request", 413, "The request body is too large. %s", ""},           // emulator wording
}

// aad builds the Error for an AADSTS code with the table's wording.
func aad(code int, args ...any) *Error {
	d, ok := aadsts[code]
	if !ok {
		panic(fmt.Sprintf("emulator: AADSTS%d is not in the table", code))
	}
	text := d.text
	if len(args) > 0 || strings.Contains(text, "%") {
		text = fmt.Sprintf(text, args...)
	}
	return &Error{Code: code, OAuth: d.oauth, Status: d.status, Description: strings.TrimSpace(text), Suberror: d.suberror}
}

// AAD returns the Error Microsoft answers for AADSTS code, with args filling
// the wording's blanks (client id, tenant, …). E2's handlers use it so every
// error text comes from the one table.
func AAD(code int, args ...any) *Error { return aad(code, args...) }

// errorBody is Microsoft's error envelope (reference §3.1).
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes,omitempty"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri,omitempty"`
	Suberror         string `json:"suberror,omitempty"`
	Claims           string `json:"claims,omitempty"`
}

const msTimestamp = "2006-01-02 15:04:05Z"

// envelope renders err with fresh trace/correlation ids (the correlation id
// echoes client-request-id when the client sent one, as Microsoft does).
func (e *Emulator) envelope(r *http.Request, err *Error) errorBody {
	now := e.now().UTC().Format(msTimestamp)
	trace := newGUID()
	corr := ""
	if r != nil {
		corr = r.Header.Get("client-request-id")
	}
	if !isGUID(corr) {
		corr = newGUID()
	}
	desc := err.Description
	if err.Code != 0 {
		desc = fmt.Sprintf("AADSTS%d: %s", err.Code, err.Description)
	}
	desc += "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + now
	b := errorBody{Error: err.OAuth, ErrorDescription: desc, Timestamp: now, TraceID: trace, CorrelationID: corr,
		Suberror: err.Suberror, Claims: err.Claims}
	if err.Code != 0 {
		b.ErrorCodes = []int{err.Code}
		b.ErrorURI = "https://" + e.cloudOf(r).LoginHost + "/error?code=" + strconv.Itoa(err.Code)
	}
	return b
}

// WriteError answers a token, devicecode or discovery request with err as
// Microsoft's JSON envelope and HTTP status (400, 401, 429 + Retry-After).
func (e *Emulator) WriteError(w http.ResponseWriter, r *http.Request, err *Error) {
	b := e.envelope(r, err)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("x-ms-request-id", b.TraceID)
	if err.Status == http.StatusTooManyRequests {
		ra := err.RetryAfter
		if ra <= 0 {
			ra = 60
		}
		h.Set("Retry-After", strconv.Itoa(ra))
	}
	status := err.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	if r != nil {
		e.logger.Debug("emulator error", "path", r.URL.Path, "error", err.OAuth, "aadsts", err.Code)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(b)
}

// WriteRedirectError sends err back to the client's redirect URI the way
// /authorize and /adminconsent do: only error and error_description (plus
// state and the given extra parameters, such as admin_consent=True), in the
// query, fragment or as an auto-submitted form_post page.
func (e *Emulator) WriteRedirectError(w http.ResponseWriter, r *http.Request, redirectURI, responseMode, state string, err *Error, extra url.Values) {
	v := url.Values{}
	for k, vals := range extra {
		v[k] = vals
	}
	b := e.envelope(r, err)
	v.Set("error", err.OAuth)
	v.Set("error_description", b.ErrorDescription)
	if err.Suberror != "" {
		v.Set("error_subcode", err.Suberror)
	}
	if state != "" {
		v.Set("state", state)
	}
	e.WriteRedirect(w, r, redirectURI, responseMode, v)
}

// WriteRedirect sends params to redirectURI with response_mode query
// (default), fragment or form_post. A redirect URI without a path gets a "/"
// appended, as Microsoft does (reference §2.1).
func (e *Emulator) WriteRedirect(w http.ResponseWriter, r *http.Request, redirectURI, responseMode string, params url.Values) {
	u, perr := url.Parse(redirectURI)
	if perr != nil {
		http.Error(w, "bad redirect uri", http.StatusBadRequest)
		return
	}
	if u.Path == "" {
		u.Path = "/"
	}
	switch responseMode {
	case "form_post":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store, no-cache")
		var sb strings.Builder
		sb.WriteString(`<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" action="`)
		sb.WriteString(html.EscapeString(u.String()))
		sb.WriteString(`">`)
		for k, vals := range params {
			for _, val := range vals {
				sb.WriteString(`<input type="hidden" name="` + html.EscapeString(k) + `" value="` + html.EscapeString(val) + `" />`)
			}
		}
		sb.WriteString(`<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit" /></noscript></form><script language="javascript">document.forms[0].submit();</script></body></html>`)
		_, _ = w.Write([]byte(sb.String()))
	case "fragment":
		u.Fragment = ""
		u.RawFragment = ""
		http.Redirect(w, r, u.String()+"#"+params.Encode(), http.StatusFound)
	default:
		q := u.Query()
		for k, vals := range params {
			q[k] = vals
		}
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
}

// formatMSTime formats t the way AADSTS texts print dates.
func formatMSTime(t time.Time) string { return t.UTC().Format("01/02/2006 15:04:05") }
