package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/provider"
)

// A desktop app signs a user in with the device flow, then turns the one
// refresh token into an Exchange token and a Graph token.
func ExampleClient_DeviceFlow() {
	ctx := context.Background()
	p, _ := provider.Microsoft(provider.MicrosoftOptions{Tenant: "common"})
	c := &oauth.Client{HTTP: &http.Client{Timeout: 30 * time.Second}, Provider: p, ClientID: "00000000-0000-0000-0000-000000000000"}
	scopes, _ := p.ExpandScopes([]string{"imap", "smtp", "graph-mail-send", "offline_access"}, provider.Delegated)
	groups := p.SplitByResource(scopes) // Exchange first, then Graph

	tok, err := c.DeviceFlow(ctx, groups[0].Scopes, func(pr oauth.DevicePrompt) {
		fmt.Fprintln(os.Stderr, pr.Message)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	graph, err := c.Refresh(ctx, tok.RefreshToken, groups[1].Scopes)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	_ = graph.RefreshToken // rotated: store it before using graph.AccessToken
}

// A daemon gets an app-only Exchange token with a certificate.
func ExampleClient_ClientCredentials() {
	pfx, _ := os.ReadFile("app.pfx")
	cert, err := oauth.LoadCertificate(pfx, os.Getenv("PFX_PASSWORD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	p, _ := provider.Microsoft(provider.MicrosoftOptions{Tenant: "contoso.onmicrosoft.com"})
	c := &oauth.Client{HTTP: http.DefaultClient, Provider: p, ClientID: "00000000-0000-0000-0000-000000000000", Auth: cert}
	scopes, _ := p.ExpandScopes([]string{"imap"}, provider.AppOnly) // https://outlook.office365.com/.default
	tok, err := c.ClientCredentials(context.Background(), scopes)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	_ = tok
}

// A desktop app signs in through the system browser on a loopback
// redirect, with a paste fallback for SSH sessions.
func ExampleClient_Login() {
	p := provider.Google()
	c := &oauth.Client{HTTP: http.DefaultClient, Provider: p, ClientID: "id.apps.googleusercontent.com", Auth: oauth.ClientSecret{Secret: os.Getenv("GOOGLE_SECRET")}}
	tok, err := c.Login(context.Background(), oauth.LoginOptions{
		Scopes: []string{provider.GoogleMailScope},
		Interaction: oauth.Interaction{
			ShowURL: func(u string) { fmt.Fprintln(os.Stderr, "Open:", u) },
			Paste:   os.Stdin,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	_ = tok
}
