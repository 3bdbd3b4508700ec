package pop3_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/pop3"
	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/sasl"
)

// TestIntegrationDovecotPOP3 drives every command of the client against a
// real Dovecot: STLS, CAPA, AUTH with and without initial response, STAT,
// LIST, UIDL, RETR (with a dot-stuffed line), DELE and QUIT.
func TestIntegrationDovecotPOP3(t *testing.T) {
	dovecot.SkipUnlessEnabled(t)
	srv := dovecot.Start(t, dovecot.Options{})
	const alice = "alice@example.test"
	bodies := []string{"first\r\n", "second\r\n.dot-leading line\r\n..two dots\r\n"}
	for i, b := range bodies {
		srv.Deliver(t, "bob@example.test", alice, []byte(fmt.Sprintf("From: bob@example.test\r\nSubject: m%d\r\n\r\n%s", i+1, b)))
	}
	pemData, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	tok := srv.Token(t, alice, jose.RS256, time.Hour)

	dial := func(t *testing.T) *pop3.Client {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.POP3)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		c, err := pop3.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.StartTLS(tlsConf); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("initial response, read and delete", func(t *testing.T) {
		c := dial(t)
		caps, err := c.Capabilities()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(caps["SASL"], " "); got != "OAUTHBEARER XOAUTH2" {
			t.Errorf("SASL = %q", got)
		}
		err = c.AuthWith(sasl.NewOAuthBearerClient(sasl.Options{User: alice, Token: tok, Host: srv.Host, Port: srv.POP3}), pop3.AuthOptions{InitialResponse: true})
		if err != nil {
			t.Fatalf("auth: %v\n%s", err, srv.Log())
		}
		n, _, err := c.Stat()
		if err != nil || n != 2 {
			t.Fatalf("Stat = %d, %v", n, err)
		}
		list, err := c.List()
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %v, %v", list, err)
		}
		uids, err := c.UIDL()
		if err != nil || len(uids) != 2 || uids[0].UID == uids[1].UID {
			t.Fatalf("UIDL = %v, %v", uids, err)
		}
		msg, err := c.Retr(2)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(msg)) != list[1].Size {
			t.Errorf("RETR gave %d bytes, LIST said %d", len(msg), list[1].Size)
		}
		if !strings.HasSuffix(string(msg), "\r\n\r\n"+bodies[1]) {
			t.Errorf("RETR body = %q, want it to end with %q", msg, bodies[1])
		}
		if err := c.Dele(1); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two-step xoauth2 after delete", func(t *testing.T) {
		c := dial(t)
		if err := c.Auth(sasl.NewXOAUTH2Client(sasl.Options{User: alice, Token: tok})); err != nil {
			t.Fatal(err)
		}
		n, _, err := c.Stat()
		if err != nil || n != 1 {
			t.Fatalf("Stat = %d, %v; want 1 after DELE+QUIT", n, err)
		}
		_, err = c.Retr(5)
		var pe *pop3.Error
		if !errors.As(err, &pe) || pe.Command != "RETR" {
			t.Errorf("Retr(5) err = %v, want *pop3.Error", err)
		}
		c.Quit()
	})

	t.Run("user/pass refused (oauth only)", func(t *testing.T) {
		c := dial(t)
		err := c.User(alice)
		if err == nil {
			err = c.Pass("not-a-password")
		}
		var pe *pop3.Error
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want *pop3.Error", err)
		}
	})
}
