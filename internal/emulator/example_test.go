package emulator_test

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// Start an emulator on 127.0.0.1 and get an app-only Exchange token with the
// demo confidential app's secret.
func ExampleStart() {
	srv, err := emulator.Start(emulator.ServerOptions{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	demo := srv.Demo()
	resp, err := srv.HTTPClient().PostForm(srv.URL+"/"+demo.TenantDomain+"/oauth2/v2.0/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {demo.ConfidentialID},
		"client_secret": {demo.ConfidentialSecret},
		"scope":         {"https://outlook.office365.com/.default"},
	})
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Scope       string `json:"scope"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		panic(err)
	}
	at, _ := srv.Lookup(tok.AccessToken)
	fmt.Println(resp.StatusCode, tok.TokenType, tok.Scope)
	fmt.Println(at.AppOnly(), at.Roles)
	// Output:
	// 200 Bearer https://outlook.office365.com/.default
	// true [IMAP.AccessAsApp POP.AccessAsApp SMTP.SendAsApp]
}
