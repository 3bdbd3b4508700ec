package oidcprovider

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestIntegrationServer(t *testing.T) {
	s := Start(t)
	resp, err := s.HTTP.Get(s.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Issuer        string   `json:"issuer"`
		Introspection string   `json:"introspection_endpoint"`
		Device        string   `json:"device_authorization_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Issuer != s.Issuer || !strings.HasPrefix(s.Issuer, "http://127.0.0.1:") || m.Device == "" {
		t.Errorf("discovery = %+v", m)
	}
	u, err := url.Parse(s.IntrospectionURL())
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = nil
	if u.String() != m.Introspection || pw != IntrospectSecret {
		t.Errorf("IntrospectionURL = %s, discovery says %s", s.IntrospectionURL(), m.Introspection)
	}
	// A wrong user code leaves the browser on the device page with an
	// error rather than reporting success.
	p, err := NewBrowser("x").ApproveDevice(t.Context(), s.Issuer, "WRONG-CODE")
	if err == nil && strings.Contains(p.Body, "Success") {
		t.Errorf("a wrong user code was accepted: %.300s", p.Body)
	}
}
