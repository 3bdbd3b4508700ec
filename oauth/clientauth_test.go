package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/mailoauth/mailoauth/provider"
)

// testCert makes a self-signed certificate for key.
func testCert(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailoauth test"},
		NotBefore: fixedNow.Add(-time.Hour), NotAfter: fixedNow.Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var testRSAKey = func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}()

// verifyAssertion checks an assertion as a server would and returns its
// header and claims.
func verifyAssertion(t *testing.T, s string, pub any, alg jose.SignatureAlgorithm) (jose.Header, jwt.Claims) {
	t.Helper()
	tok, err := jwt.ParseSigned(s, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("parse assertion: %v", err)
	}
	var c jwt.Claims
	if err := tok.Claims(pub, &c); err != nil {
		t.Fatalf("verify assertion: %v", err)
	}
	return tok.Headers[0], c
}

func TestCertificateAssertion(t *testing.T) {
	cert := testCert(t, testRSAKey)
	s256 := sha256.Sum256(cert.Raw)
	s1 := sha1.Sum(cert.Raw)
	ms, _ := provider.Microsoft(provider.MicrosoftOptions{Tenant: "contoso.com"})
	oidcRS := &provider.Provider{Kind: provider.KindOIDC, Endpoints: provider.Endpoints{TokenAuthSigningAlgs: []string{"HS256", "RS256"}}}
	tests := []struct {
		name     string
		c        Certificate
		p        *provider.Provider
		wantAlg  jose.SignatureAlgorithm
		wantHdr  map[string]any
		wantLife time.Duration
	}{
		{"microsoft default", Certificate{}, ms, jose.PS256, map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(s256[:])}, 5 * time.Minute},
		{"microsoft rs256", Certificate{Alg: jose.RS256}, ms, jose.RS256, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(s1[:])}, 5 * time.Minute},
		{"x5c and long life capped", Certificate{SendX5C: true, Lifetime: time.Hour}, ms, jose.PS256, map[string]any{
			"x5t#S256": base64.RawURLEncoding.EncodeToString(s256[:]), "x5c": []any{base64.StdEncoding.EncodeToString(cert.Raw)}}, 10 * time.Minute},
		{"oidc follows metadata", Certificate{}, oidcRS, jose.RS256, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(s1[:])}, 5 * time.Minute},
		{"oidc no thumbprint, kid", Certificate{Thumbprint: ThumbprintNone, KeyID: "k1"}, oidcRS, jose.RS256, map[string]any{}, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.Key, c.Chain = testRSAKey, []*x509.Certificate{cert}
			a, err := c.Assertion("client-id", "https://login.example/t/token", tt.p, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			hdr, claims := verifyAssertion(t, a, &testRSAKey.PublicKey, tt.wantAlg)
			if hdr.Algorithm != string(tt.wantAlg) {
				t.Errorf("alg = %s, want %s", hdr.Algorithm, tt.wantAlg)
			}
			got := rawHeader(t, a)
			delete(got, "typ")
			delete(got, "alg")
			delete(got, "kid")
			if diff := cmp.Diff(tt.wantHdr, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			if typ := hdr.ExtraHeaders["typ"]; typ != "JWT" {
				t.Errorf("typ = %v", typ)
			}
			if tt.c.KeyID != "" && hdr.KeyID != tt.c.KeyID {
				t.Errorf("kid = %q", hdr.KeyID)
			}
			if claims.Issuer != "client-id" || claims.Subject != "client-id" || len(claims.Audience) != 1 || claims.Audience[0] != "https://login.example/t/token" || len(claims.ID) < 16 {
				t.Errorf("claims = %+v", claims)
			}
			if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: "client-id", AnyAudience: jwt.Audience{"https://login.example/t/token"}, Time: fixedNow.Add(time.Minute)}, 0); err != nil {
				t.Errorf("claims invalid: %v", err)
			}
			if got := claims.Expiry.Time().Sub(claims.NotBefore.Time()); got != tt.wantLife {
				t.Errorf("lifetime = %v, want %v", got, tt.wantLife)
			}
		})
	}
}

func TestCertificateAuthRequest(t *testing.T) {
	cert := testCert(t, testRSAKey)
	rec, p, srv := fakeServer(t, provider.KindMicrosoft, func(w http.ResponseWriter, s seen) { writeJSON(w, 200, tokenJSON("app", "")) })
	c := &Client{HTTP: srv.Client(), Provider: p, ClientID: "cid", Auth: &Certificate{Key: testRSAKey, Chain: []*x509.Certificate{cert}}, Now: fixedClock}
	for range 2 {
		if _, err := c.ClientCredentials(context.Background(), []string{"https://graph.microsoft.com/.default"}); err != nil {
			t.Fatal(err)
		}
	}
	var jtis []string
	for _, r := range rec.all() {
		if r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.Form.Get("client_id") != "cid" || r.Form.Get("client_secret") != "" {
			t.Errorf("form = %v", r.Form)
		}
		_, claims := verifyAssertion(t, r.Form.Get("client_assertion"), &testRSAKey.PublicKey, jose.PS256)
		if claims.Audience[0] != p.Endpoints.TokenURL {
			t.Errorf("aud = %v, want the token endpoint %s", claims.Audience, p.Endpoints.TokenURL)
		}
		jtis = append(jtis, claims.ID)
	}
	if len(jtis) != 2 || jtis[0] == jtis[1] {
		t.Errorf("jti not fresh per request: %v", jtis)
	}
}

func TestCertificateECDSA(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &Certificate{Key: k, Chain: []*x509.Certificate{testCert(t, k)}}
	p := &provider.Provider{Kind: provider.KindOIDC, Endpoints: provider.Endpoints{TokenAuthSigningAlgs: []string{"PS256", "ES256"}}}
	a, err := c.Assertion("cid", "https://as/token", p, fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	verifyAssertion(t, a, &k.PublicKey, jose.ES256)
	p.Endpoints.TokenAuthSigningAlgs = []string{"RS256"}
	if _, err := c.Assertion("cid", "https://as/token", p, fixedNow); err == nil || !strings.Contains(err.Error(), "none usable") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadCertificate(t *testing.T) {
	cert := testCert(t, testRSAKey)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(testRSAKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey)})
	pfx, err := pkcs12.Modern.Encode(testRSAKey, cert, nil, "pfx password")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})

	tests := []struct {
		name, pass string
		data       []byte
		wantErr    string
	}{
		{"pem pkcs8", "", append(append([]byte{}, certPEM...), keyPEM...), ""},
		{"pem pkcs1 key first", "", append(append([]byte{}, pkcs1PEM...), certPEM...), ""},
		{"pfx", "pfx password", pfx, ""},
		{"pfx wrong password", "nope", pfx, "wrong password"},
		{"cert only", "", certPEM, "no private key"},
		{"key only", "", keyPEM, "no certificate"},
		{"mismatched key", "", append(append([]byte{}, certPEM...), otherPEM...), "does not belong"},
		{"encrypted", "", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "encrypted PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadCertificate(tt.data, tt.pass)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.Chain[0].Equal(cert) || !testRSAKey.PublicKey.Equal(c.Key.Public()) {
				t.Error("loaded a different certificate or key")
			}
			if strings.Contains(c.String(), "PRIVATE") {
				t.Error("String() shows the key")
			}
		})
	}
}

// rawHeader decodes a compact JWS's protected header as sent.
func rawHeader(t *testing.T, compact string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(compact, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseSecretStyle(t *testing.T) {
	for in, want := range map[string]SecretStyle{"": SecretAuto, "client_secret_post": SecretInBody, "client_secret_basic": SecretBasic} {
		if got, err := ParseSecretStyle(in); err != nil || got != want {
			t.Errorf("ParseSecretStyle(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseSecretStyle("private_key_jwt"); err == nil {
		t.Error("private_key_jwt accepted as a secret style")
	}
}

// TestCertificateCheckAlg: each configurable algorithm against each key
// kind; a mismatch is refused with a message naming both, before signing.
func TestCertificateCheckAlg(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	tests := []struct {
		alg     jose.SignatureAlgorithm
		key     crypto.Signer
		wantErr string
	}{
		{"", p256, ""},
		{jose.PS256, testRSAKey, ""},
		{jose.RS512, testRSAKey, ""},
		{jose.ES256, p256, ""},
		{jose.ES512, p521, ""},
		{jose.ES256, testRSAKey, "ES256 needs an ECDSA key on P-256, and this certificate's key is RSA 2048-bit"},
		{jose.ES384, p256, "ES384 needs an ECDSA key on P-384, and this certificate's key is ECDSA P-256"},
		{jose.PS384, p521, "PS384 needs an RSA key, and this certificate's key is ECDSA P-521"},
		{jose.HS256, testRSAKey, "unsupported assertion algorithm"},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg)+"/"+keyKind(tt.key), func(t *testing.T) {
			c := &Certificate{Key: tt.key, Chain: []*x509.Certificate{testCert(t, tt.key)}, Alg: tt.alg}
			err := c.CheckAlg()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckAlg = %v, want %q", err, tt.wantErr)
			}
			// Signing refuses it the same way instead of the signer's error.
			if _, err := c.Assertion("cid", "https://as/token", nil, fixedNow); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Assertion = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
