package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxMetadataBytes bounds a discovery document; real ones are a few KB.
const maxMetadataBytes = 1 << 20

// Metadata is the subset of an OpenID Connect Discovery 1.0 / RFC 8414
// authorization server metadata document that mailoauth uses.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint                string   `json:"device_authorization_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	UserinfoEndpoint                           string   `json:"userinfo_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
}

// ParseMetadata decodes and checks a discovery document: it must name an
// issuer and a token endpoint, and every endpoint must be an absolute http(s)
// URL (http only on loopback, so a document cannot send credentials in clear
// over the network).
func ParseMetadata(data []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if m.Issuer == "" {
		return nil, errors.New("discovery document has no issuer")
	}
	if m.TokenEndpoint == "" {
		return nil, errors.New("discovery document has no token_endpoint")
	}
	for _, f := range []struct{ name, v string }{
		{"issuer", m.Issuer},
		{"authorization_endpoint", m.AuthorizationEndpoint},
		{"token_endpoint", m.TokenEndpoint},
		{"device_authorization_endpoint", m.DeviceAuthorizationEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint},
		{"introspection_endpoint", m.IntrospectionEndpoint},
		{"userinfo_endpoint", m.UserinfoEndpoint},
		{"jwks_uri", m.JWKSURI},
	} {
		if f.v == "" {
			continue
		}
		if err := checkEndpointURL(f.v); err != nil {
			return nil, fmt.Errorf("discovery document %s: %w", f.name, err)
		}
	}
	return &m, nil
}

// checkEndpointURL accepts https URLs, and http URLs on loopback hosts only.
func checkEndpointURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q is not absolute", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("URL %q uses http on a non-loopback host: https is required", s)
	}
	return fmt.Errorf("URL %q: scheme must be https", s)
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Discover fetches the issuer's metadata: first OpenID Connect Discovery
// (<issuer>/.well-known/openid-configuration), then RFC 8414
// (/.well-known/oauth-authorization-server inserted before the issuer's
// path), for plain OAuth servers. The document's issuer must equal the one
// asked for (OIDC Discovery §4.3, RFC 8414 §3.3): a mismatch would let one
// server impersonate another.
func Discover(ctx context.Context, hc *http.Client, issuer string) (*Provider, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if err := checkEndpointURL(issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.Path, "/")
	oidcURL := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfcURL := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path

	var errs []error
	for _, doc := range []string{oidcURL, rfcURL} {
		m, err := fetchMetadata(ctx, hc, doc)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if strings.TrimSuffix(m.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("discovery at %s names issuer %q, not %q: check the configured issuer", doc, m.Issuer, issuer)
		}
		return FromMetadata(m), nil
	}
	return nil, fmt.Errorf("discover %s: %w", issuer, errors.Join(errs...))
}

// FromMetadata builds a generic provider from a metadata document.
func FromMetadata(m *Metadata) *Provider {
	return &Provider{
		Kind: KindOIDC,
		Endpoints: Endpoints{
			Issuer:               m.Issuer,
			AuthURL:              m.AuthorizationEndpoint,
			TokenURL:             m.TokenEndpoint,
			DeviceAuthURL:        m.DeviceAuthorizationEndpoint,
			RevocationURL:        m.RevocationEndpoint,
			IntrospectionURL:     m.IntrospectionEndpoint,
			UserinfoURL:          m.UserinfoEndpoint,
			JWKSURL:              m.JWKSURI,
			TokenAuthMethods:     m.TokenEndpointAuthMethodsSupported,
			TokenAuthSigningAlgs: m.TokenEndpointAuthSigningAlgValuesSupported,
			CodeChallengeMethods: m.CodeChallengeMethodsSupported,
			GrantTypes:           m.GrantTypesSupported,
		},
	}
}

func fetchMetadata(ctx context.Context, hc *http.Client, doc string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, doc, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", doc, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", doc, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", doc, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: HTTP %d", doc, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && !strings.Contains(mt, "json") {
		return nil, fmt.Errorf("get %s: got %s, not JSON", doc, mt)
	}
	m, err := ParseMetadata(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", doc, err)
	}
	return m, nil
}
