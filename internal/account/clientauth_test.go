package account

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// postOnlyServer is an OIDC server whose metadata lists only
// client_secret_post and whose token endpoint refuses a secret anywhere
// else, as such servers do (an HTTP Basic header is an invalid_client).
func postOnlyServer(t *testing.T, secret string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                srv.URL,
			"token_endpoint":                        srv.URL + "/token",
			"authorization_endpoint":                srv.URL + "/authorize",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.Header.Get("Authorization") != "" || r.PostForm.Get("client_id") != "cid" || r.PostForm.Get("client_secret") != secret {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "client_secret_post only"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + r.PostForm.Get("scope"), "token_type": "Bearer", "expires_in": 3600})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestOIDCSecretPlacement: an oidc account without auth_method follows the
// server's metadata, so a server that takes the secret only in the body
// works; an explicit client_secret_basic is still obeyed (and refused by
// this server).
func TestOIDCSecretPlacement(t *testing.T) {
	const secret = "s3cret"
	srv := postOnlyServer(t, secret)
	t.Setenv("OIDC_TEST_SECRET", secret)
	tests := []struct {
		name, authMethod string
		wantErr          string
	}{
		{name: "unset follows the metadata"},
		{name: "explicit post", authMethod: "client_secret_post"},
		{name: "explicit basic is obeyed", authMethod: "client_secret_basic", wantErr: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "[accounts.o]\nprovider = \"oidc\"\nclient_id = \"cid\"\nclient_secret = \"env:OIDC_TEST_SECRET\"\n" +
				"flow = \"client_credentials\"\nemail = \"app@example.com\"\nscopes = [\"mail\"]\n" +
				"issuer = \"" + srv.URL + "\"\n"
			if tt.authMethod != "" {
				doc += "auth_method = \"" + tt.authMethod + "\"\n"
			}
			a, err := open(t, doc).Account("o")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tok, err := a.Token(ctx, "imap")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff("at-mail", tok.AccessToken); diff != "" {
				t.Errorf("access token (-want +got)\n%s", diff)
			}
		})
	}
}

// writeCert writes a self-signed certificate and its key as one PEM file.
func writeCert(t *testing.T, key crypto.Signer) string {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailoauth test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...)
	p := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAssertionAlgFitsKey: an assertion_alg the certificate's key cannot
// sign with is refused when the client is built (login), with a message
// naming both; one that fits is accepted.
func TestAssertionAlgFitsKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := writeCert(t, k)
	srv := postOnlyServer(t, "unused")
	tests := []struct{ alg, wantErr string }{
		{"ES384", ""},
		{"", ""},
		{"ES256", "assertion algorithm ES256 needs an ECDSA key on P-256, and this certificate's key is ECDSA P-384"},
		{"PS256", "assertion algorithm PS256 needs an RSA key"},
	}
	for _, tt := range tests {
		t.Run("alg="+tt.alg, func(t *testing.T) {
			doc := "[accounts.o]\nprovider = \"oidc\"\nclient_id = \"cid\"\nflow = \"client_credentials\"\nemail = \"app@example.com\"\n" +
				"scopes = [\"mail\"]\nissuer = \"" + srv.URL + "\"\ncertificate = \"" + cert + "\"\n"
			if tt.alg != "" {
				doc += "assertion_alg = \"" + tt.alg + "\"\n"
			}
			a, err := open(t, doc).Account("o")
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Client(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
