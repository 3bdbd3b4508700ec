package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailoauth/mailoauth/mailclient"
)

// testCert generates the proxy's self-signed certificate in a temp dir and
// returns a server config and a pool that trusts it.
func testCert(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), CertFileName)
	cert, made, err := LoadOrCreateCert(path)
	if err != nil || !made {
		t.Fatalf("LoadOrCreateCert = %v, %v", made, err)
	}
	pool := x509.NewCertPool()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pool
}

func TestLoadOrCreateCert(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", CertFileName)
	c1, made, err := LoadOrCreateCert(path)
	if err != nil || !made {
		t.Fatalf("first call: made=%v err=%v", made, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	c2, made, err := LoadOrCreateCert(path)
	if err != nil || made {
		t.Fatalf("second call: made=%v err=%v", made, err)
	}
	if string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Error("the persisted certificate was not reused")
	}
	leaf, _ := x509.ParseCertificate(c1.Certificate[0])
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := LoadOrCreateCert(path); err == nil {
		t.Error("a broken certificate file was accepted (or overwritten)")
	}
}

func TestLocalSTARTTLS(t *testing.T) {
	srvTLS, pool := testCert(t)
	mod := func(c *Config) { c.TLS, c.TLSConfig = TLSStartTLS, srvTLS }
	t.Run("imap", func(t *testing.T) {
		e := newEnv(t, "imap", mod)
		c := e.dial()
		c.run("< * OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED] proxy.test mailoauth proxy ready",
			"> a1 LOGIN "+testEmail+" "+quoteIMAP(testPass),
			"< a1 NO [PRIVACYREQUIRED] Run STARTTLS first",
			"> a0 AUTHENTICATE PLAIN",
			"< a0 NO [PRIVACYREQUIRED] Run STARTTLS first",
			"> a2 STARTTLS",
			"< a2 OK Begin TLS negotiation now")
		if !strings.Contains(e.logs.String(), "did not run STARTTLS first") {
			t.Errorf("no log line says why the login before STARTTLS was refused:\n%s", e.logs.String())
		}
		c.startTLS(pool)
		c.run("> a3 CAPABILITY",
			"< * CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN",
			"< a3 OK CAPABILITY completed",
			"> a4 STARTTLS",
			"< a4 BAD STARTTLS not available",
			"> a5 LOGIN "+testEmail+" "+quoteIMAP(testPass),
			"< a5 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in",
			"> a6 LOGOUT", "< * BYE Logging out", "< a6 OK Logout completed.", "<EOF")
	})
	t.Run("imap injection after STARTTLS", func(t *testing.T) {
		e := newEnv(t, "imap", mod)
		c := e.dial()
		c.run("< * OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID STARTTLS LOGINDISABLED] proxy.test mailoauth proxy ready",
			">raw a1 STARTTLS\r\na2 LOGIN x y\r\n",
			"< a1 OK Begin TLS negotiation now",
			"<EOF")
	})
	t.Run("pop3", func(t *testing.T) {
		e := newEnv(t, "pop3", mod)
		c := e.dial()
		c.run("< "+pop3Greeting,
			"> CAPA", "< +OK Capability list follows", "< STLS", "< .",
			"> USER "+testEmail, "< -ERR [AUTH] Run STLS first",
			"> AUTH PLAIN "+plainIR(testEmail, testPass), "< -ERR [AUTH] Run STLS first",
			"> AUTH PLAIN", "< -ERR [AUTH] Run STLS first",
			"> STLS", "< +OK Begin TLS negotiation")
		if !strings.Contains(e.logs.String(), "did not run STARTTLS first") {
			t.Errorf("no log line says why the login before STARTTLS was refused:\n%s", e.logs.String())
		}
		c.startTLS(pool)
		c.run("> CAPA", "< +OK Capability list follows", "< USER", "< SASL PLAIN", "< .",
			"> USER "+testEmail, "< +OK", "> PASS "+testPass, "< +OK Logged in",
			"> QUIT", "< +OK Logging out.", "<EOF")
	})
	t.Run("smtp", func(t *testing.T) {
		e := newEnv(t, "smtp", mod)
		c := e.dial()
		c.run("< "+smtpGreeting,
			"> EHLO c", "< 250-proxy.test", "< 250 STARTTLS",
			"> AUTH PLAIN "+plainIR(testEmail, testPass), "< 530 5.7.0 Must issue a STARTTLS command first",
			"> STARTTLS", "< 220 2.0.0 Ready to start TLS")
		if !strings.Contains(e.logs.String(), "did not run STARTTLS first") {
			t.Errorf("no log line says why the login before STARTTLS was refused:\n%s", e.logs.String())
		}
		c.startTLS(pool)
		c.run("> EHLO c", "< 250-proxy.test", "< 250 AUTH PLAIN LOGIN",
			"> AUTH PLAIN "+plainIR(testEmail, testPass), "< 235 2.7.0 Authentication successful",
			"> QUIT", "< 221 2.0.0 Bye", "<EOF")
	})
}

func TestLocalImplicitTLS(t *testing.T) {
	srvTLS, pool := testCert(t)
	for _, proto := range []string{"imap", "pop3", "smtp"} {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, proto, func(c *Config) { c.TLS, c.TLSConfig = TLSImplicit, srvTLS })
			raw, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c := newClient(t, raw)
			c.startTLS(pool)
			switch proto {
			case "imap":
				c.run("< "+imapGreeting, "> a LOGIN "+testEmail+" "+quoteIMAP(testPass), "< a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in")
			case "pop3":
				c.run("< "+pop3Greeting, "> AUTH PLAIN "+plainIR(testEmail, testPass), "< +OK Logged in")
			case "smtp":
				c.run("< "+smtpGreeting, "> AUTH PLAIN "+plainIR(testEmail, testPass), "< 235 2.7.0 Authentication successful")
			}
		})
	}
}

func TestUpstreamImplicitTLS(t *testing.T) {
	srvTLS, pool := testCert(t)
	e := newEnv(t, "imap", nil)
	e.fake.mu.Lock()
	e.fake.tls, e.fake.impl = srvTLS, true
	e.fake.mu.Unlock()
	// A second proxy whose account trusts the fake's certificate, and a
	// third that does not: verification is on.
	for _, trust := range []bool{true, false} {
		up := e.fake.server()
		up.Security = mailclient.ImplicitTLS
		var cfg *tls.Config
		if trust {
			cfg = &tls.Config{RootCAs: pool}
		}
		e2 := newEnv(t, "imap", func(c *Config) {
			c.Accounts[0].Upstream = up
			c.Accounts[0].UpstreamTLS = cfg
		})
		want := "< a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"
		if !trust {
			want = "< a1 NO [UNAVAILABLE] The proxy could not connect to the mail server; see the proxy's log"
		}
		e2.dial().run("< "+imapGreeting, "> a1 LOGIN "+testEmail+" "+quoteIMAP(testPass), want)
	}
}

// TestUpstreamSTARTTLS: an upstream URL with STARTTLS upgrades before
// login and verifies the certificate like implicit TLS does.
func TestUpstreamSTARTTLS(t *testing.T) {
	srvTLS, pool := testCert(t)
	e := newEnv(t, "smtp", nil)
	e.fake.mu.Lock()
	e.fake.tls = srvTLS
	e.fake.mu.Unlock()
	for _, trust := range []bool{true, false} {
		t.Run(fmt.Sprintf("trusted=%v", trust), func(t *testing.T) {
			up := e.fake.server()
			up.Security = mailclient.StartTLS
			cfg := &tls.Config{} // system roots: the fake's certificate is not among them
			if trust {
				cfg = &tls.Config{RootCAs: pool}
			}
			e2 := newEnv(t, "smtp", func(c *Config) {
				c.Accounts[0].Upstream = up
				c.Accounts[0].UpstreamTLS = cfg
			})
			want := "< 235 2.7.0 Authentication successful"
			if !trust {
				want = "< 454 4.7.0 The proxy could not log in to the mail server; see the proxy's log"
			}
			e2.dial().run("< "+smtpGreeting, "> AUTH PLAIN "+plainIR(testEmail, testPass), want)
			if !trust && !strings.Contains(e2.logs.String(), "certificate") {
				t.Errorf("the log does not say the certificate failed:\n%s", e2.logs.String())
			}
		})
	}
}
