package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/sasl"
)

// TestBenchProxyThroughput is the bulk-throughput figure of issue 6 (run by
// bench/proxy-throughput.sh, never by CI): IMAP FETCH of every message of a
// mailbox of MAILOAUTH_BENCH_MB megabytes (default 100) from a real
// Dovecot, directly over TLS, through a socat plain→TLS relay, and through
// the proxy (plain locally, TLS upstream), best of three runs each; and
// through simonrob/email-oauth2-proxy when MAILOAUTH_BENCH_EMAILPROXY names
// a checkout of it (bench/proxy-figures.sh takes the path as an argument).
func TestBenchProxyThroughput(t *testing.T) {
	if os.Getenv("MAILOAUTH_BENCH") != "1" {
		t.Skip("benchmark: run bench/proxy-throughput.sh (MAILOAUTH_BENCH=1, needs Dovecot and socat)")
	}
	dovecot.SkipUnlessEnabled(t)
	mb := 100
	if v, err := strconv.Atoi(os.Getenv("MAILOAUTH_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dv := dovecot.Start(t, dovecot.Options{Mechanisms: []string{"xoauth2"}})
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", (1<<20)/78)
	for i := range mb {
		dv.Deliver(t, "bob@example.test", testEmail, []byte(fmt.Sprintf("From: bob@example.test\r\nTo: %s\r\nSubject: bulk %d\r\n\r\n%s", testEmail, i, body)))
	}
	tok := dv.Token(t, testEmail, jose.RS256, time.Hour)
	upTLS, err := mailclient.TLSConfig(dv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	imaps, _ := mailclient.ParseURL(dv.URL("imaps"))

	// socat: plain TCP in, verified TLS out, a process per connection.
	socatAddr := freeAddr(t)
	socat := exec.Command(lookPath(t, "socat"), "TCP-LISTEN:"+strings.Split(socatAddr, ":")[1]+",bind=127.0.0.1,reuseaddr,fork",
		"OPENSSL:"+imaps.Addr()+",cafile="+dv.CAFile+",verify=1,commonname=127.0.0.1")
	if err := socat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { socat.Process.Kill(); socat.Wait() })
	waitListening(t, socatAddr)

	p := startDovecotProxy(t, dv, "imap", "imaps", TLSNone, nil, tok, "")
	login := func(c *imapBenchConn) error {
		return c.cmd("a LOGIN " + testEmail + " " + quoteIMAP(testPass))
	}

	type target struct {
		name string
		dial func() (net.Conn, error)
		auth func(c *imapBenchConn) error
	}
	xoauth := func(c *imapBenchConn) error {
		return c.cmd("a AUTHENTICATE XOAUTH2 " + sasl.XOAUTH2InitialResponse(testEmail, tok))
	}
	targets := []target{
		{"direct (TLS)", func() (net.Conn, error) {
			cfg := upTLS.Clone()
			cfg.ServerName = "127.0.0.1"
			return tls.Dial("tcp", imaps.Addr(), cfg)
		}, xoauth},
		{"socat relay", func() (net.Conn, error) { return net.Dial("tcp", socatAddr) }, xoauth},
		{"mailoauth proxy", func() (net.Conn, error) { return net.Dial("tcp", p.addr) }, login},
	}
	if dir := os.Getenv("MAILOAUTH_BENCH_EMAILPROXY"); dir != "" {
		addr := startEmailProxy(t, dir, dv, tok)
		targets = append(targets, target{"email-oauth2-proxy", func() (net.Conn, error) { return net.Dial("tcp", addr) }, login})
	}
	const rounds = 5
	fmt.Printf("IMAP UID FETCH 1:* BODY.PEEK[] of %d MB from Dovecot on loopback, targets interleaved, best and median of %d:\n", mb, rounds)
	times := make([][]time.Duration, len(targets))
	var n int64
	for range rounds {
		for i, tg := range targets {
			d, bytes, err := fetchAll(tg.dial, tg.auth)
			if err != nil {
				t.Fatalf("%s: %v", tg.name, err)
			}
			times[i], n = append(times[i], d), bytes
		}
	}
	var direct, directMed float64
	rates := map[string]float64{}
	for i, tg := range targets {
		slices.Sort(times[i])
		rate := float64(n) / times[i][0].Seconds() / (1 << 20)
		med := float64(n) / times[i][rounds/2].Seconds() / (1 << 20)
		if direct == 0 {
			direct, directMed = rate, med
		}
		rates[tg.name] = rate
		fmt.Printf("  %-18s best %6.1f MB/s (%.2fx direct)   median %6.1f MB/s (%.2fx direct)\n", tg.name, rate, rate/direct, med, med/directMed)
	}
	fmt.Printf("  proxy/socat %.2fx", rates["mailoauth proxy"]/rates["socat relay"])
	if r := rates["email-oauth2-proxy"]; r > 0 {
		fmt.Printf(", proxy/email-oauth2-proxy %.2fx", rates["mailoauth proxy"]/r)
	}
	fmt.Println()
}

type imapBenchConn struct {
	c net.Conn
	r *bufio.Reader
	n int64
}

// cmd sends a command tagged "a" and reads to its tagged reply, skipping
// literals (counted in n).
func (c *imapBenchConn) cmd(line string) error {
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return err
	}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, "a ") {
			if !strings.HasPrefix(l, "a OK") {
				return errors.New(strings.TrimSpace(l))
			}
			return nil
		}
		if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}\r\n") {
			size, err := strconv.ParseInt(l[i+1:len(l)-3], 10, 64)
			if err == nil {
				m, err := io.CopyN(io.Discard, c.r, size)
				c.n += m
				if err != nil {
					return err
				}
			}
		}
	}
}

func fetchAll(dial func() (net.Conn, error), auth func(*imapBenchConn) error) (time.Duration, int64, error) {
	nc, err := dial()
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Minute))
	c := &imapBenchConn{c: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	if _, err := c.r.ReadString('\n'); err != nil {
		return 0, 0, err
	}
	if err := auth(c); err != nil {
		return 0, 0, fmt.Errorf("login: %w", err)
	}
	if err := c.cmd("a EXAMINE INBOX"); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := c.cmd("a UID FETCH 1:* (BODY.PEEK[])"); err != nil {
		return 0, 0, err
	}
	d := time.Since(start)
	c.cmd("a LOGOUT")
	return d, c.n, nil
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}

// startEmailProxy runs simonrob/email-oauth2-proxy from the checkout dir
// with Debian's python3 in --no-gui mode, in front of dv's IMAPS port: its
// account uses the client-credentials flow against a token endpoint on
// 127.0.0.1 that hands out tok (a JWT Dovecot accepts), so it logs in
// without a browser. Its own cache store (encrypted with the login
// password, as it always does) lives in the test's temp dir. Nothing of
// its code is in this repository.
func startEmailProxy(t *testing.T, dir string, dv *dovecot.Server, tok string) string {
	t.Helper()
	py := "/usr/bin/python3"
	script := filepath.Join(dir, "emailproxy.py")
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("email-oauth2-proxy checkout: %v", err)
	}
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(tokenSrv.Close)
	port := strings.Split(freeAddr(t), ":")[1]
	tmp := t.TempDir()
	cfg := fmt.Sprintf(`[IMAP-%s]
server_address = 127.0.0.1
server_port = %d
local_address = 127.0.0.1

[%s]
token_url = %s/token
oauth2_scope = mail
oauth2_flow = client_credentials
client_id = bench
client_secret = bench
`, port, dv.IMAPS, testEmail, tokenSrv.URL)
	cfgFile := filepath.Join(tmp, "emailproxy.config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, "--no-gui", "--config-file", cfgFile, "--cache-store", filepath.Join(tmp, "cache"),
		"--log-file", filepath.Join(tmp, "log"))
	// It verifies Dovecot's certificate with Python's default context:
	// OpenSSL's SSL_CERT_FILE makes it trust the test CA.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+dv.CAFile)
	out, err := os.Create(filepath.Join(tmp, "console"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitListening(t, "127.0.0.1:"+port)
	return "127.0.0.1:" + port
}
