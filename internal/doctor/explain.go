package doctor

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// explain turns an identity-server failure into a finding: the AADSTS
// codes a setup mistake produces get their own plain words and the exact
// place to fix them; other OAuth errors keep the oauth package's hint.
func (r *run) explain(step, what string, err error) Finding {
	f := Finding{Step: step, Status: Fail, What: what, Error: err.Error()}
	a := r.acct
	reg := "Microsoft Entra admin center → App registrations → the app with Application (client) ID " + a.ClientID
	login := "run mailoauth login " + a.Name
	var oe *oauth.Error
	// A ReloginError wraps the server's *oauth.Error; its own words (from
	// the reason the store keeps for every process) come first.
	if re := (*tokens.ReloginError)(nil); errors.As(err, &re) || !errors.As(err, &oe) {
		if errors.Is(err, tokens.ErrReloginRequired) {
			f.Relogin = true
			f.Words = reloginWords(&f, err)
			f.Fix = login
			return f
		}
		if w, fix := netWords(err, ""); w != "" {
			f.Words, f.Fix = w, fix
			return f
		}
		f.Words, f.Fix = err.Error(), ""
		return f
	}
	f.AADSTS = oe.FirstAADSTS()
	code := fmt.Sprintf(" (AADSTS%d)", f.AADSTS)
	if f.AADSTS == 0 {
		code = ""
		if oe.Code != "" {
			code = " (" + oe.Code + ")"
		}
	}
	switch f.AADSTS {
	case 90002:
		f.Words = "tenant " + a.Tenant + " not found: a typo, or the wrong cloud" + code
		f.Fix = "set tenant in [accounts." + a.Name + "] to the Directory (tenant) ID shown on the app registration's Overview page, or a verified domain of it; for a national cloud set cloud (usgov, usgov-dod, china)"
	case 90038:
		f.Words = "tenant " + a.Tenant + " belongs to another national cloud" + code
		f.Fix = "set cloud in [accounts." + a.Name + "] to the tenant's cloud (usgov, usgov-dod or china)"
	case 700016:
		f.Words = "no app with client id " + a.ClientID + " exists in tenant " + a.Tenant + ": a wrong client id, or the app lives in another tenant and is not multi-tenant (or not consented here)" + code
		f.Fix = "compare client_id with the Application (client) ID on the app registration's Overview page; if the app is in another tenant, make it multi-tenant (Authentication → Supported account types) and have an administrator of " + a.Tenant + " consent to it (mailoauth consent " + a.Name + ")"
	case 50194:
		f.Words = "the app is single-tenant, so tenant = \"" + a.Tenant + "\" cannot be used with it" + code
		f.Fix = "set tenant in [accounts." + a.Name + "] to the app's Directory (tenant) ID or domain (Overview page), or make the app multi-tenant (" + reg + " → Authentication → Supported account types)"
	case 7000218:
		f.Words = "\"Allow public client flows\" is off for the app, so Microsoft treats it as confidential and wants a secret" + code
		f.Fix = reg + " → Authentication → Advanced settings → \"Allow public client flows\" → Yes, then Save"
	case 700025:
		f.Words = "a " + credKind(a) + " is configured, but the app is a public client and must not send one" + code
		f.Fix = "remove " + credKey(a) + " from [accounts." + a.Name + "] (device and browser sign-in need none), or use flow = \"client_credentials\" with a confidential app"
	case 7000215:
		f.Words = "the client secret is wrong: most often the secret's ID was pasted instead of its Value" + code
		f.Fix = reg + " → Certificates & secrets → New client secret; copy the Value column (shown only once) into what client_secret points to (" + a.ClientSecret.String() + ")"
	case 7000222:
		f.Words = "the client secret has expired" + code
		f.Fix = reg + " → Certificates & secrets → New client secret; put its Value where client_secret points to (" + a.ClientSecret.String() + "), or switch to a certificate"
	case 700027, 50012, 900384:
		f.Words = "the certificate " + a.Certificate + " is not registered on the app (or its key does not match)" + code
		f.Fix = reg + " → Certificates & secrets → Certificates → Upload certificate: upload the public part of " + a.Certificate + " (the thumbprint is in the certificate line above)"
	case 700024:
		f.Words = "the client assertion is outside its valid time: this computer's clock is off" + code
		f.Fix = "synchronise the clock (timedatectl set-ntp true, or your system's NTP settings)"
	case 70011, 500011, 650057, 65005, 650056, 700022, 28000:
		f.Words = "the scopes are not accepted: " + oe.Description
		f.Fix = oe.Hint
		if f.AADSTS == 650057 || f.AADSTS == 65005 || f.AADSTS == 650056 {
			f.Fix = reg + " → API permissions → Add a permission → APIs my organization uses → Office 365 Exchange Online (or Microsoft Graph), add the mail permissions, then Grant admin consent"
		}
	case 65001:
		f.Words = "no consent to the app's permissions in tenant " + a.Tenant + code
		f.Fix = "an administrator consents for the tenant (mailoauth consent " + a.Name + "), or the user consents at the next interactive sign-in (" + login + ")"
	case 53003:
		f.Words = "Conditional Access blocks this sign-in" + code
		f.Fix = "an administrator reviews the sign-in logs (Entra admin center → Sign-in logs, correlation id " + oe.CorrelationID + ") and the Conditional Access policy"
	}
	if f.Words != "" {
		return f
	}
	if errors.Is(err, oauth.ErrReloginRequired) {
		f.Relogin = true
		f.Words = "the sign-in is no longer valid" + code + ": " + firstSentence(oe.Hint, oe.Description)
		f.Fix = login
		return f
	}
	f.Words = "the identity server refused" + code + ": " + firstSentence(oe.Description, oe.Code)
	f.Fix = oe.Hint
	return f
}

// reloginMeaning: why a refresh token stops working, by AADSTS number
// (reference §3.2).
var reloginMeaning = map[int]string{
	50173:  "it was revoked (a password change, or an administrator revoked the sessions)",
	700082: "it expired after 90 days without use",
	700084: "it reached the 24-hour limit of single-page-app refresh tokens",
	70008:  "it expired or was revoked",
	50076:  "multi-factor authentication is now required",
	50079:  "the user must register for multi-factor authentication",
	50078:  "the multi-factor authentication has expired",
	70043:  "a Conditional Access sign-in frequency policy ended it",
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d{4,9})`)

// reloginWords says why an account needs a login, from the ReloginError's
// reason (the server's answer, kept as text in the store), and records the
// AADSTS number in f.
func reloginWords(f *Finding, err error) string {
	reason := err.Error()
	var re *tokens.ReloginError
	if errors.As(err, &re) && re.Reason != "" {
		reason = re.Reason
	}
	if m := aadstsRE.FindStringSubmatch(reason); m != nil {
		f.AADSTS, _ = strconv.Atoi(m[1])
		if meaning, ok := reloginMeaning[f.AADSTS]; ok {
			return fmt.Sprintf("the refresh token no longer works: %s (AADSTS%d)", meaning, f.AADSTS)
		}
	}
	if strings.Contains(reason, "no refresh token stored") {
		return "no refresh token is stored: the account was never logged in, or logged out"
	}
	return "the refresh token no longer works: " + firstSentence(reason)
}

// firstSentence returns the first non-empty string, cut at its first
// sentence, so a line stays readable.
func firstSentence(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if i := strings.Index(s, ". "); i > 0 && i < 300 {
			return s[:i]
		}
		return s
	}
	return ""
}
