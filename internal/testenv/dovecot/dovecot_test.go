package dovecot

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// TestIntegrationStart checks the helper itself: the listeners come up
// with the certificate in CAFile, and tokens are well-formed JWTs.
func TestIntegrationStart(t *testing.T) {
	SkipUnlessEnabled(t)
	start := time.Now()
	s := Start(t, Options{})
	t.Logf("%s started in %v", s, time.Since(start))
	pemData, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	c, err := tls.Dial("tcp", strings.TrimPrefix(s.URL("imaps"), "imaps://"), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.HasPrefix(string(buf[:n]), "* OK ") || !strings.Contains(string(buf[:n]), "AUTH=OAUTHBEARER AUTH=XOAUTH2") {
		t.Errorf("greeting = %q", buf[:n])
	}
	tok := s.Token(t, "alice@example.test", jose.PS256, time.Hour)
	if strings.Count(tok, ".") != 2 {
		t.Errorf("token is not a compact JWS")
	}
}
