package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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
// the proxy (plain locally, TLS upstream), best of three runs each.
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
		{"mailoauth proxy", func() (net.Conn, error) { return net.Dial("tcp", p.addr) }, func(c *imapBenchConn) error {
			return c.cmd("a LOGIN " + testEmail + " " + quoteIMAP(testPass))
		}},
	}
	fmt.Printf("IMAP UID FETCH 1:* BODY.PEEK[] of %d MB from Dovecot on loopback, best of 3:\n", mb)
	var direct float64
	for _, tg := range targets {
		best := time.Duration(1 << 62)
		var n int64
		for range 3 {
			d, bytes, err := fetchAll(tg.dial, tg.auth)
			if err != nil {
				t.Fatalf("%s: %v", tg.name, err)
			}
			best, n = min(best, d), bytes
		}
		rate := float64(n) / best.Seconds() / (1 << 20)
		if direct == 0 {
			direct = rate
		}
		fmt.Printf("  %-16s %8.1f MB/s  (%.2fx direct, %d bytes in %v)\n", tg.name, rate, rate/direct, n, best.Round(time.Millisecond))
	}
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
