package oauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/provider"
)

// ClientAuthRequest is what a ClientAuth sees of a request it authenticates.
type ClientAuthRequest struct {
	ClientID string             // the application (client) id: iss and sub of an assertion
	TokenURL string             // the token endpoint: a client assertion's audience
	Endpoint string             // the URL being called (token or device authorization)
	Provider *provider.Provider // its metadata picks the secret placement and assertion algorithm
	Form     url.Values         // to add client_secret or client_assertion to
	Header   http.Header        // to add Authorization to
	Now      func() time.Time   // the clock of the assertion's iat, nbf and exp
}

// ClientAuth authenticates a confidential client at the token endpoint
// (RFC 6749 §2.3). Implementations: ClientSecret and *Certificate.
type ClientAuth interface {
	Authenticate(ctx context.Context, r ClientAuthRequest) error
}

// SecretStyle says where a client secret goes.
type SecretStyle int

// Secret placements (RFC 6749 §2.3.1).
const (
	SecretAuto   SecretStyle = iota // follow the server metadata, see ClientSecret
	SecretInBody                    // client_secret_post
	SecretBasic                     // client_secret_basic
)

// ParseSecretStyle maps a token_endpoint_auth_method name (RFC 7591 §2),
// as an account configures it, to a SecretStyle; "" means SecretAuto.
func ParseSecretStyle(method string) (SecretStyle, error) {
	switch method {
	case "":
		return SecretAuto, nil
	case "client_secret_post":
		return SecretInBody, nil
	case "client_secret_basic":
		return SecretBasic, nil
	}
	return SecretAuto, fmt.Errorf("unknown client secret method %q: use client_secret_basic or client_secret_post", method)
}

// ClientSecret authenticates with a shared secret.
//
// With SecretAuto the secret goes in an HTTP Basic header when the server's
// metadata lists client_secret_basic (or lists nothing, as RFC 8414 then
// implies basic), else in the body. Microsoft lists both; there the body is
// used, as Microsoft's own libraries do.
type ClientSecret struct {
	Secret string      // the secret's value (not its ID)
	Style  SecretStyle // where it goes; SecretAuto follows the server
}

// Authenticate adds the secret to the request.
func (s ClientSecret) Authenticate(_ context.Context, r ClientAuthRequest) error {
	if s.Secret == "" {
		return errors.New("the client secret is empty")
	}
	style := s.Style
	if style == SecretAuto {
		style = SecretInBody
		if r.Provider.Kind != provider.KindMicrosoft && r.Provider.Endpoints.SupportsAuthMethod("client_secret_basic") {
			style = SecretBasic
		}
	}
	if style == SecretBasic {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic.
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(r.ClientID)+":"+url.QueryEscape(s.Secret))))
		return nil
	}
	r.Form.Set("client_id", r.ClientID)
	r.Form.Set("client_secret", s.Secret)
	return nil
}

// String hides the secret.
func (s ClientSecret) String() string { return "oauth.ClientSecret{[redacted]}" }

// Thumbprint selects the certificate thumbprint header of an assertion.
type Thumbprint int

// Thumbprint headers (RFC 7515 §4.1.7, §4.1.8).
const (
	// ThumbprintAuto: x5t for RS256 (the older Microsoft recipe),
	// x5t#S256 for everything else.
	ThumbprintAuto Thumbprint = iota
	ThumbprintSHA256
	ThumbprintSHA1
	ThumbprintNone // for servers that find the key by kid or iss only
)

// clientAssertionType is RFC 7523 §2.2's fixed URN.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Certificate authenticates with a private key: a JWT client assertion
// (private_key_jwt, RFC 7523) signed afresh for every request, with aud =
// token endpoint, iss = sub = client id, a random jti and a short lifetime.
//
// Microsoft: PS256 with the x5t#S256 header (its current recipe); RS256 with
// x5t is the older one, chosen with Alg = "RS256". Other servers: the
// algorithm follows the server's
// token_endpoint_auth_signing_alg_values_supported unless Alg is set.
type Certificate struct {
	Key   crypto.Signer       // *rsa.PrivateKey or *ecdsa.PrivateKey
	Chain []*x509.Certificate // leaf first; may be empty when Thumbprint is ThumbprintNone

	Alg        jose.SignatureAlgorithm // "" = automatic, see above
	Thumbprint Thumbprint              // header naming the certificate; ThumbprintAuto: x5t for RS256, else x5t#S256
	SendX5C    bool                    // add the x5c chain (Microsoft subject name + issuer auth)
	KeyID      string                  // optional kid header
	Lifetime   time.Duration           // 0 = 5 minutes; at most 10 minutes
}

// String hides the key.
func (c *Certificate) String() string {
	if len(c.Chain) > 0 {
		return "oauth.Certificate{" + c.Chain[0].Subject.String() + "}"
	}
	return "oauth.Certificate{}"
}

// Authenticate signs a fresh assertion and adds it to the form.
func (c *Certificate) Authenticate(_ context.Context, r ClientAuthRequest) error {
	a, err := c.Assertion(r.ClientID, r.TokenURL, r.Provider, r.Now())
	if err != nil {
		return err
	}
	r.Form.Set("client_id", r.ClientID)
	r.Form.Set("client_assertion_type", clientAssertionType)
	r.Form.Set("client_assertion", a)
	return nil
}

// CheckAlg reports whether the key can sign with Alg: PS* and RS* need an
// RSA key, ES256/ES384/ES512 an ECDSA key on P-256/P-384/P-521. Callers
// that take Alg from a setting call it when the key is loaded, so a
// mismatch is a clear error before any sign-in rather than the signer's.
// An empty Alg (automatic) always fits.
func (c *Certificate) CheckAlg() error {
	if c.Alg == "" {
		return nil
	}
	if c.Key == nil {
		return errors.New("certificate credential has no private key")
	}
	var want string
	switch c.Alg {
	case jose.PS256, jose.PS384, jose.PS512, jose.RS256, jose.RS384, jose.RS512:
		if _, ok := c.Key.Public().(*rsa.PublicKey); ok {
			return nil
		}
		want = "an RSA key"
	case jose.ES256, jose.ES384, jose.ES512:
		curve := map[jose.SignatureAlgorithm]elliptic.Curve{jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521()}[c.Alg]
		if k, ok := c.Key.Public().(*ecdsa.PublicKey); ok && k.Curve == curve {
			return nil
		}
		want = "an ECDSA key on " + curve.Params().Name
	default:
		return fmt.Errorf("unsupported assertion algorithm %q: use PS256/384/512, RS256/384/512 or ES256/384/512", c.Alg)
	}
	return fmt.Errorf("assertion algorithm %s needs %s, and this certificate's key is %s: change assertion_alg or leave it unset to pick one the key can sign with", c.Alg, want, keyKind(c.Key))
}

// keyKind names a key's type (and curve) for an error message.
func keyKind(k crypto.Signer) string {
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", pub.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + pub.Curve.Params().Name
	}
	return fmt.Sprintf("%T", k)
}

// algFor picks the signing algorithm.
func (c *Certificate) algFor(p *provider.Provider) (jose.SignatureAlgorithm, error) {
	if c.Alg != "" {
		if err := c.CheckAlg(); err != nil {
			return "", err
		}
		return c.Alg, nil
	}
	var candidates []jose.SignatureAlgorithm
	switch k := c.Key.Public().(type) {
	case *rsa.PublicKey:
		candidates = []jose.SignatureAlgorithm{jose.PS256, jose.RS256, jose.PS384, jose.RS384, jose.PS512, jose.RS512}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			candidates = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			candidates = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			candidates = []jose.SignatureAlgorithm{jose.ES512}
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("unsupported private key type %T: use RSA or ECDSA P-256/384/521", c.Key)
	}
	if p == nil || p.Kind == provider.KindMicrosoft || len(p.Endpoints.TokenAuthSigningAlgs) == 0 {
		return candidates[0], nil
	}
	for _, a := range candidates {
		if slices.Contains(p.Endpoints.TokenAuthSigningAlgs, string(a)) {
			return a, nil
		}
	}
	return "", fmt.Errorf("the server accepts client assertions signed with %v, none usable with this %T key: set the algorithm or use another key", p.Endpoints.TokenAuthSigningAlgs, c.Key)
}

// Assertion returns a signed client assertion JWT for clientID at tokenURL.
func (c *Certificate) Assertion(clientID, tokenURL string, p *provider.Provider, now time.Time) (string, error) {
	if c == nil || c.Key == nil {
		return "", errors.New("certificate credential has no private key")
	}
	alg, err := c.algFor(p)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	tp := c.Thumbprint
	if tp == ThumbprintAuto {
		tp = ThumbprintSHA256
		if alg == jose.RS256 {
			tp = ThumbprintSHA1
		}
	}
	if tp != ThumbprintNone {
		if len(c.Chain) == 0 {
			return "", errors.New("certificate credential has no certificate for the thumbprint header")
		}
		der := c.Chain[0].Raw
		if tp == ThumbprintSHA1 {
			sum := sha1.Sum(der)
			opts = opts.WithHeader("x5t", base64.RawURLEncoding.EncodeToString(sum[:]))
		} else {
			sum := sha256.Sum256(der)
			opts = opts.WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(sum[:]))
		}
	}
	if c.SendX5C && len(c.Chain) > 0 {
		x5c := make([]string, len(c.Chain))
		for i, cert := range c.Chain {
			x5c[i] = base64.StdEncoding.EncodeToString(cert.Raw) // RFC 7515 §4.1.6: standard base64
		}
		opts = opts.WithHeader("x5c", x5c)
	}
	if c.KeyID != "" {
		opts = opts.WithHeader("kid", c.KeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: c.Key}, opts)
	if err != nil {
		return "", fmt.Errorf("client assertion signer: %w", err)
	}
	life := c.Lifetime
	if life <= 0 {
		life = 5 * time.Minute
	}
	life = min(life, 10*time.Minute)
	claims := jwt.Claims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.Audience{tokenURL},
		ID:        rand.Text(),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(life)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// LoadCertificate reads a certificate credential from PEM (CERTIFICATE
// blocks, leaf first, and one unencrypted PKCS#8, PKCS#1 or SEC 1 private
// key block, in one file or two concatenated) or from PKCS#12 / .pfx
// protected by password. The key must match the first certificate.
func LoadCertificate(data []byte, password string) (*Certificate, error) {
	var c Certificate
	if bytes.Contains(data, []byte("-----BEGIN")) {
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			switch b.Type {
			case "CERTIFICATE":
				cert, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("parse certificate: %w", err)
				}
				c.Chain = append(c.Chain, cert)
			case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
				if c.Key != nil {
					return nil, errors.New("PEM holds more than one private key")
				}
				k, err := parsePrivateKey(b)
				if err != nil {
					return nil, err
				}
				c.Key = k
			case "ENCRYPTED PRIVATE KEY":
				return nil, errors.New("encrypted PEM private keys are not supported: decrypt it (openssl pkey) or use a .pfx with a password")
			}
		}
	} else {
		key, leaf, cas, err := pkcs12.DecodeChain(data, password)
		if err != nil {
			return nil, fmt.Errorf("decode pfx (wrong password?): %w", err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("pfx private key %T cannot sign", key)
		}
		c.Key = s
		c.Chain = append([]*x509.Certificate{leaf}, cas...)
	}
	if c.Key == nil {
		return nil, errors.New("no private key found: give the key with the certificate (PEM) or a .pfx")
	}
	if len(c.Chain) == 0 {
		return nil, errors.New("no certificate found: the thumbprint header needs it")
	}
	if !publicKeysEqual(c.Chain[0].PublicKey, c.Key.Public()) {
		return nil, errors.New("the private key does not belong to the first certificate")
	}
	return &c, nil
}

func parsePrivateKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %T cannot sign", k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
