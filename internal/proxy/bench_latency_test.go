package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mailoauth/mailoauth/internal/testenv/dovecot"
	"github.com/mailoauth/mailoauth/mailclient"
	"github.com/mailoauth/mailoauth/sasl"
)

// TestBenchProxyLatency is the rest of issue 6's figures against a real
// Dovecot (run by bench/proxy-figures.sh, never by CI): login cost
// (connect to authenticated) through the proxy vs direct, the argon2id cost
// of an account's first login vs the cached check after it, the added
// latency of a NOOP round trip after login (p50/p99), the proxy's CPU while
// a client stops reading a large FETCH, and how fast a client hears that
// the server refused the token. With MAILOAUTH_BENCH_EMAILPROXY it adds
// email-oauth2-proxy's login cost.
func TestBenchProxyLatency(t *testing.T) {
	if os.Getenv("MAILOAUTH_BENCH") != "1" {
		t.Skip("benchmark: run bench/proxy-figures.sh (MAILOAUTH_BENCH=1, needs Dovecot)")
	}
	dovecot.SkipUnlessEnabled(t)
	dv := dovecot.Start(t, dovecot.Options{Mechanisms: []string{"xoauth2"}})
	body := strings.Repeat(strings.Repeat("y", 76)+"\r\n", (1<<20)/78)
	for i := range 20 {
		dv.Deliver(t, "bob@example.test", testEmail, []byte(fmt.Sprintf("From: bob@example.test\r\nTo: %s\r\nSubject: slow %d\r\n\r\n%s", testEmail, i, body)))
	}
	tok := dv.Token(t, testEmail, jose.RS256, time.Hour)
	upTLS, err := mailclient.TLSConfig(dv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	upTLS.ServerName = "127.0.0.1"
	imaps, _ := mailclient.ParseURL(dv.URL("imaps"))
	p := startDovecotProxy(t, dv, "imap", "imaps", TLSNone, nil, tok, "")

	direct := func() (*imapBenchConn, error) {
		nc, err := tls.Dial("tcp", imaps.Addr(), upTLS)
		if err != nil {
			return nil, err
		}
		c := &imapBenchConn{c: nc, r: bufio.NewReader(nc)}
		if _, err := c.r.ReadString('\n'); err != nil {
			nc.Close()
			return nil, err
		}
		if err := c.cmd("a AUTHENTICATE XOAUTH2 " + sasl.XOAUTH2InitialResponse(testEmail, tok)); err != nil {
			nc.Close()
			return nil, err
		}
		return c, nil
	}
	viaAddr := func(addr string) func() (*imapBenchConn, error) {
		return func() (*imapBenchConn, error) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			c := &imapBenchConn{c: nc, r: bufio.NewReader(nc)}
			if _, err := c.r.ReadString('\n'); err != nil {
				nc.Close()
				return nil, err
			}
			if err := c.cmd("a LOGIN " + testEmail + " " + quoteIMAP(testPass)); err != nil {
				nc.Close()
				return nil, err
			}
			return c, nil
		}
	}
	proxied := viaAddr(p.addr)
	// Warm both paths (the proxy's password check is cached after the
	// first login; Dovecot's auth process starts).
	for _, f := range []func() (*imapBenchConn, error){direct, proxied} {
		c, err := f()
		if err != nil {
			t.Fatal(err)
		}
		c.c.Close()
	}

	// Login cost, interleaved.
	const logins = 100
	var dl, pl []time.Duration
	for range logins {
		for _, x := range []struct {
			f   func() (*imapBenchConn, error)
			out *[]time.Duration
		}{{direct, &dl}, {proxied, &pl}} {
			start := time.Now()
			c, err := x.f()
			if err != nil {
				t.Fatal(err)
			}
			*x.out = append(*x.out, time.Since(start))
			c.c.Close()
		}
	}
	fmt.Printf("Login, connect to authenticated (IMAP, Dovecot over TLS, %d each, interleaved):\n", logins)
	fmt.Printf("  direct XOAUTH2     p50 %v  p90 %v\n", pct(dl, 50), pct(dl, 90))
	fmt.Printf("  proxy LOGIN        p50 %v  p90 %v  (%.2fx direct at p50; cached password check and token)\n", pct(pl, 50), pct(pl, 90),
		float64(pct(pl, 50))/float64(pct(dl, 50)))

	// The password check alone: argon2id on an account's first login, the
	// cached HMAC after it.
	pwPath := filepath.Join(t.TempDir(), PasswordFileName)
	if err := OpenPasswordFile(pwPath).Set("work", testPass); err != nil {
		t.Fatal(err)
	}
	fresh := OpenPasswordFile(pwPath)
	start := time.Now()
	if err := fresh.Verify("work", testPass); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	start = time.Now()
	const cachedN = 1000
	for range cachedN {
		fresh.Verify("work", testPass)
	}
	fmt.Printf("  password check     first login (argon2id m=19 MiB t=2) %v, then cached %v\n", first.Round(time.Microsecond), (time.Since(start) / cachedN).Round(100*time.Nanosecond))

	if dir := os.Getenv("MAILOAUTH_BENCH_EMAILPROXY"); dir != "" {
		ep := viaAddr(startEmailProxy(t, dir, dv, tok))
		var el []time.Duration
		for i := range 11 {
			start := time.Now()
			c, err := ep()
			if err != nil {
				t.Fatalf("email-oauth2-proxy login: %v", err)
			}
			if i > 0 { // the first one fetches its token
				el = append(el, time.Since(start))
			}
			c.c.Close()
		}
		fmt.Printf("  email-oauth2-proxy p50 %v  p90 %v  (%.2fx direct; its cached token is decrypted with a PBKDF2 key on each login)\n",
			pct(el, 50), pct(el, 90), float64(pct(el, 50))/float64(pct(dl, 50)))
	}

	// Added latency per command after login.
	const noops = 2000
	fmt.Printf("NOOP round trip after login (%d each):\n", noops)
	var base time.Duration
	for _, x := range []struct {
		name string
		f    func() (*imapBenchConn, error)
	}{{"direct", direct}, {"proxy", proxied}} {
		c, err := x.f()
		if err != nil {
			t.Fatal(err)
		}
		var rtt []time.Duration
		for range noops {
			start := time.Now()
			if err := c.cmd("a NOOP"); err != nil {
				t.Fatal(err)
			}
			rtt = append(rtt, time.Since(start))
		}
		c.c.Close()
		if base == 0 {
			base = pct(rtt, 50)
		}
		fmt.Printf("  %-8s p50 %v  p99 %v  (added %v at p50)\n", x.name, pct(rtt, 50), pct(rtt, 99), pct(rtt, 50)-base)
	}

	// A client that stops reading: the proxy (its own process) must not
	// spin; TCP flow control stops it and Dovecot.
	child := startChildProxy(t, dv.URL("imaps"), dv.CAFile, tok, pwPath)
	c, err := viaAddr(child.addr)()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd("a EXAMINE INBOX"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c.c, "a UID FETCH 1:* (BODY.PEEK[])\r\n")
	time.Sleep(time.Second)
	cpu0 := cpuTime(t, child.pid)
	time.Sleep(5 * time.Second)
	stalled := cpuTime(t, child.pid) - cpu0
	c.c.Close()
	fmt.Printf("Client stops reading a 20 MB FETCH: proxy process CPU %v over 5 s\n", stalled)

	// A token the server refuses: the client's answer time.
	expired := dv.Token(t, testEmail, jose.RS256, -time.Minute)
	rp := startDovecotProxy(t, dv, "imap", "imaps", TLSNone, nil, expired, "")
	var rl []time.Duration
	for range 5 {
		start := time.Now()
		nc, err := net.Dial("tcp", rp.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := &imapBenchConn{c: nc, r: bufio.NewReader(nc)}
		c.r.ReadString('\n')
		err = c.cmd("a LOGIN " + testEmail + " " + quoteIMAP(testPass))
		rl = append(rl, time.Since(start))
		nc.Close()
		if err == nil || !strings.Contains(err.Error(), "a NO") {
			t.Fatalf("login with a refused token: %v", err)
		}
	}
	fmt.Printf("Token refused by the server: the client hears NO after p50 %v, max %v; Rejected hook called %d times\n",
		pct(rl, 50), slices.Max(rl), len(rp.rejections()))
}

// pct is the p-th percentile of ds (sorted in place), rounded for print.
func pct(ds []time.Duration, p int) time.Duration {
	slices.Sort(ds)
	i := min(len(ds)-1, len(ds)*p/100)
	return ds[i].Round(time.Microsecond)
}
