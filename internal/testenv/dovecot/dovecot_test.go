package dovecot

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
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

// TestIntegrationIntrospection checks the introspection passdb the next
// round points at oidc-provider: an opaque token falls through local JWT
// validation to the introspection URL (here a stub on 127.0.0.1).
func TestIntegrationIntrospection(t *testing.T) {
	SkipUnlessEnabled(t)
	var mu sync.Mutex
	var seen []string
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" token="+r.PostForm.Get("token")+" client="+r.PostForm.Get("client_id")+":"+r.PostForm.Get("client_secret"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("token") == "opaque-alice-ok" {
			io.WriteString(w, `{"active":true,"email":"alice@example.test"}`)
			return
		}
		io.WriteString(w, `{"active":false}`)
	}))
	defer stub.Close()
	s := Start(t, Options{IntrospectionURL: stub.URL + "/introspect", IntrospectionClientID: "dovecot", IntrospectionClientSecret: "s3cret"})
	login := func(tok string) string {
		c, err := net.Dial("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.IMAP)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n')
		ir := base64.StdEncoding.EncodeToString([]byte("user=alice@example.test\x01auth=Bearer " + tok + "\x01\x01"))
		fmt.Fprintf(c, "a1 AUTHENTICATE XOAUTH2 %s\r\n", ir)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "+ ") {
				io.WriteString(c, "\r\n")
				continue
			}
			if strings.HasPrefix(line, "a1 ") {
				return strings.TrimSpace(line)
			}
		}
	}
	if got := login("opaque-alice-ok"); !strings.HasPrefix(got, "a1 OK ") {
		t.Errorf("opaque good token: %q\n%s", got, s.Log())
	}
	if got := login("opaque-nope"); got != "a1 NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("opaque bad token: %q", got)
	}
	if got := login(s.Token(t, "alice@example.test", jose.RS256, time.Hour)); !strings.HasPrefix(got, "a1 OK ") {
		t.Errorf("JWT still validated locally: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"POST /introspect token=opaque-alice-ok client=dovecot:s3cret", "POST /introspect token=opaque-nope client=dovecot:s3cret"}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("introspection requests = %q, want %q", seen, want)
	}
}
