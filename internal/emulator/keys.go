package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// processSigningKey is shared by every Emulator of a process: RSA key
// generation is slow under -race and tests start many emulators. The kid is
// still per key, and a key never leaves the process.
var processSigningKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// initSigningKey sets up the RS256 key that signs id_tokens, with a
// self-signed certificate for the JWKS x5t/x5c fields Microsoft publishes.
func (e *Emulator) initSigningKey() error {
	key, err := processSigningKey()
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	now := e.now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net (emulated)"},
		NotBefore:    now.Add(-24 * time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create signing certificate: %w", err)
	}
	sum := sha1.Sum(der)
	e.signingKey = key
	e.signingX5t = base64.RawURLEncoding.EncodeToString(sum[:])
	e.signingKid = e.signingX5t // Microsoft's kid equals x5t
	e.signingX5c = []string{base64.StdEncoding.EncodeToString(der)}
	return nil
}

// handleKeys serves the JWKS (reference §1.2: kty, use, kid, x5t, n, e, x5c,
// issuer).
func (e *Emulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	cloud := e.cloudOf(r)
	ref, aerr := e.ResolveTenant(r, cloud)
	if aerr != nil {
		e.WriteError(w, r, aerr)
		return
	}
	issuer := e.BaseURL(r) + "/{tenantid}/v2.0"
	if ref.Tenant != nil {
		issuer = e.BaseURL(r) + "/" + ref.Tenant.ID + "/v2.0"
	}
	pub := e.signingKey.PublicKey
	key := map[string]any{
		"kty": "RSA", "use": "sig", "kid": e.signingKid, "x5t": e.signingX5t,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		"x5c": e.signingX5c, "issuer": issuer,
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{key}})
}

// PublicKeys returns the JWKS as go-jose values, for tests that verify
// id_tokens.
func (e *Emulator) PublicKeys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &e.signingKey.PublicKey, KeyID: e.signingKid, Algorithm: "RS256", Use: "sig"}}}
}

// signJWT signs claims with the emulator key (RS256, kid and x5t headers).
func (e *Emulator) signJWT(claims map[string]any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", e.signingKid).WithHeader("x5t", e.signingX5t)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: e.signingKey}, opts)
	if err != nil {
		return "", fmt.Errorf("new signer: %w", err)
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return s, nil
}
