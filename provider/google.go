package provider

import "strings"

// GoogleMailScope is the one scope Gmail's IMAP, POP and SMTP accept
// (reference §7).
const GoogleMailScope = "https://mail.google.com/"

// Google returns Google's provider. Its endpoints are fixed (they come from
// https://accounts.google.com/.well-known/openid-configuration), so no
// request is needed. access_type=offline is set on authorization URLs
// because Google issues refresh tokens only when asked that way.
func Google() *Provider {
	return &Provider{
		Kind: KindGoogle,
		Endpoints: Endpoints{
			Issuer:               "https://accounts.google.com",
			AuthURL:              "https://accounts.google.com/o/oauth2/v2/auth",
			TokenURL:             "https://oauth2.googleapis.com/token",
			DeviceAuthURL:        "https://oauth2.googleapis.com/device/code",
			RevocationURL:        "https://oauth2.googleapis.com/revoke",
			UserinfoURL:          "https://openidconnect.googleapis.com/v1/userinfo",
			JWKSURL:              "https://www.googleapis.com/oauth2/v3/certs",
			TokenAuthMethods:     []string{"client_secret_post", "client_secret_basic"},
			CodeChallengeMethods: []string{"S256", "plain"},
		},
		ExtraAuthParams: map[string]string{"access_type": "offline"},
	}
}

// isGmailScope reports whether s is a Gmail scope, which Google's device
// flow refuses.
func isGmailScope(s string) bool {
	return s == GoogleMailScope || strings.HasPrefix(s, "https://www.googleapis.com/auth/gmail.")
}
