package cli

import (
	"bufio"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEmulatorMailServices: `mailoauth emulator` also starts the Exchange
// IMAP, POP3, SMTP and Graph servers, prints one line per service, honours
// --imap-listen, and serves them under the CA --ca-out wrote (with --http
// too, since the mail servers always use TLS).
func TestEmulatorMailServices(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	imapAddr := ln.Addr().String()
	ln.Close()
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	c := startEmulatorCmd(t, func(out string) bool { return services(out)["graph"] != "" },
		"emulator", "--listen", "127.0.0.1:0", "--http", "--ca-out", caPath, "--imap-listen", imapAddr)
	svc := services(c.out.String())
	for name, prefix := range map[string]string{
		"identity": "http://127.0.0.1:", "imap": "imaps://" + imapAddr, "pop3": "pop3s://127.0.0.1:",
		"smtp": "smtp://127.0.0.1:", "graph": "https://127.0.0.1:",
	} {
		if !strings.HasPrefix(svc[name], prefix) {
			t.Errorf("%s line %q, want %s…; stdout:\n%s", name, svc[name], prefix, c.out.String())
		}
	}

	pool := caOutPool(t, caPath)
	// The IMAP greeting over TLS verified against the written CA.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", imapAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Errorf("imap greeting %q, %v", greeting, err)
	}

	c.stop(t)
	// Every listener is closed after the command returns.
	if c, err := net.DialTimeout("tcp", imapAddr, time.Second); err == nil {
		c.Close()
		t.Error("the IMAP listener is still open after the command returned")
	}
}
