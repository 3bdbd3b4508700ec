package emulator

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionSkew is the clock skew allowed on a client assertion's nbf.
const assertionSkew = 5 * time.Minute

// assertionHeader is the part of a client assertion's JOSE header the
// emulator reads before verifying (reference §2.6b).
type assertionHeader struct {
	Alg     string   `json:"alg"`
	X5t     string   `json:"x5t"`
	X5tS256 string   `json:"x5t#S256"`
	X5c     []string `json:"x5c"`
}

// assertionClaims are the claims Microsoft checks.
type assertionClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	ID        string           `json:"jti"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	Expiry    *jwt.NumericDate `json:"exp"`
}

// decodeThumbprint accepts a thumbprint in standard base64 (with or without
// padding, as MSAL Go sends it) or base64url.
func decodeThumbprint(s string) []byte {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// parseAssertionHeader decodes the JOSE header of a compact JWS without
// trusting it.
func parseAssertionHeader(assertion string) (assertionHeader, error) {
	var h assertionHeader
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return h, fmt.Errorf("a JWT has 3 parts, this one has %d", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, fmt.Errorf("header is not base64url: %w", err)
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("header is not JSON: %w", err)
	}
	return h, nil
}

// findAssertionCert locates the registered certificate the assertion names
// by x5t#S256, x5t, or the leaf of x5c.
func findAssertionCert(a *App, h assertionHeader) (*AppCert, string) {
	var want []byte
	is256 := false
	switch {
	case h.X5tS256 != "":
		want, is256 = decodeThumbprint(h.X5tS256), true
	case h.X5t != "":
		want = decodeThumbprint(h.X5t)
	case len(h.X5c) > 0:
		der, err := base64.StdEncoding.DecodeString(h.X5c[0])
		if err != nil {
			return nil, ""
		}
		s := sha1.Sum(der)
		want = s[:]
	}
	shown := strings.ToUpper(hex.EncodeToString(want))
	for _, c := range a.Certificates {
		if (is256 && bytes.Equal(c.SHA256, want)) || (!is256 && bytes.Equal(c.SHA1, want)) {
			return c, shown
		}
	}
	return nil, shown
}

// validateAssertion checks a private_key_jwt client assertion the way Entra
// does (reference §2.6b, §8.3): RS256 or PS256; key found by x5t / x5t#S256
// in either base64 alphabet or by x5c; signature; iss = client id, sub =
// iss; aud = this token endpoint; nbf/exp window; jti unique.
func (e *Emulator) validateAssertion(tr *tokenRequest, assertion string) *Error {
	h, err := parseAssertionHeader(assertion)
	if err != nil {
		return aad(50027, "The client assertion is not a valid JWT: "+err.Error()+".")
	}
	if h.Alg != string(jose.RS256) && h.Alg != string(jose.PS256) {
		return aad(50027, "Unsupported signing algorithm '"+h.Alg+"'; use RS256 or PS256.")
	}
	e.mu.Lock()
	cert, shown := findAssertionCert(tr.app, h)
	e.mu.Unlock()
	if cert == nil {
		return aad(700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'.]", shown, tr.app.ClientID))
	}
	obj, err := jose.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256, jose.PS256})
	if err != nil {
		return aad(50027, "The client assertion could not be parsed.")
	}
	payload, err := obj.Verify(cert.Cert.PublicKey.(*rsa.PublicKey))
	if err != nil {
		return aad(700027, fmt.Sprintf("Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s']", shown))
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return aad(50027, "The client assertion claims are not valid JSON.")
	}
	switch {
	case c.Issuer == "":
		return aad(90014, "iss")
	case !strings.EqualFold(c.Issuer, tr.app.ClientID):
		return aad(700021)
	case c.Subject == "":
		return aad(90014, "sub")
	case c.Subject != c.Issuer:
		return aad(50048, c.Subject, c.Issuer)
	case len(c.Audience) == 0:
		return aad(90014, "aud")
	case c.Expiry == nil:
		return aad(90014, "exp")
	case c.ID == "":
		return aad(90014, "jti")
	}
	if !e.audienceMatches(tr, c.Audience) {
		return aad(700023)
	}
	now := e.now()
	exp := c.Expiry.Time()
	nbf := time.Time{}
	if c.NotBefore != nil {
		nbf = c.NotBefore.Time()
	}
	if !now.Before(exp) || (!nbf.IsZero() && now.Add(assertionSkew).Before(nbf)) {
		return aad(700024, now.UTC().Format(time.RFC3339), nbf.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for j, until := range e.usedJTIs { // forget jtis whose assertions expired
		if now.After(until) {
			delete(e.usedJTIs, j)
		}
	}
	key := tr.app.ClientID + "\x00" + c.ID
	if _, used := e.usedJTIs[key]; used {
		return aad(7000274, c.ID)
	}
	e.usedJTIs[key] = exp
	return nil
}

// audienceMatches accepts the token endpoint URL (v2 or v1) of the
// request's tenant, on the request's host or any login host of its cloud.
func (e *Emulator) audienceMatches(tr *tokenRequest, aud jwt.Audience) bool {
	for _, a := range aud {
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" {
			continue
		}
		hostOK := strings.EqualFold(u.Host, tr.r.Host)
		if c := cloudForHost(u.Host); c != nil && c.loginFamily() == tr.ref.Cloud.loginFamily() {
			hostOK = true
		}
		if !hostOK {
			continue
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(parts) < 3 {
			continue
		}
		p := strings.Join(parts[1:], "/")
		if p != "oauth2/v2.0/token" && p != "oauth2/token" {
			continue
		}
		if strings.EqualFold(parts[0], tr.ref.Segment) {
			return true
		}
		ref, aerr := e.resolveTenantSegment(parts[0], tr.ref.Cloud)
		if aerr == nil && ref.Tenant != nil && ref.Tenant == tr.ref.Tenant {
			return true
		}
	}
	return false
}
