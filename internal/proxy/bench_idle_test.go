package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestBenchProxyIdle is the idle-connections figure of issue 6 (run by
// bench/proxy-figures.sh, never by CI): MAILOAUTH_BENCH_IDLE (default
// 10,000) IMAP sessions logged in through a proxy process to an upstream
// over TLS, then left idle: the proxy's resident memory per session
// (VmRSS growth over a 100-session baseline, divided by the count), its CPU
// over 10 idle seconds, and a NOOP on every session afterwards (none may
// have been dropped).
func TestBenchProxyIdle(t *testing.T) {
	if os.Getenv("MAILOAUTH_BENCH") != "1" {
		t.Skip("benchmark: run bench/proxy-figures.sh (MAILOAUTH_BENCH=1)")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("MAILOAUTH_BENCH_IDLE")); err == nil && v > 0 {
		n = v
	}
	// The proxy holds two descriptors per session; the clients here one.
	raiseNoFile(uint64(2*n + 100))
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if most := int(lim.Max-64) / 2; n > most {
		fmt.Printf("(the descriptor hard limit %d allows %d sessions, not %d: two descriptors each in the proxy)\n", lim.Max, most, n)
		n = most
	}
	certFile := filepath.Join(t.TempDir(), CertFileName)
	if _, _, err := LoadOrCreateCert(certFile); err != nil {
		t.Fatal(err)
	}
	up := startChild(t, "MAILOAUTH_BENCH_CHILD=upstream", "BENCH_CERT="+certFile).addr
	pw := filepath.Join(t.TempDir(), PasswordFileName)
	if err := OpenPasswordFile(pw).Set("work", testPass); err != nil {
		t.Fatal(err)
	}
	child := startChildProxy(t, "imaps://"+up, certFile, "tok", pw)

	var (
		mu    sync.Mutex
		conns []*idleConn
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.c.Close()
		}
	})
	open := func(k int) {
		var wg sync.WaitGroup
		var next, failed atomic.Int64
		var firstErr atomic.Value
		for range 32 {
			wg.Go(func() {
				for next.Add(1) <= int64(k) {
					c, err := dialIdle(child.addr)
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			t.Fatalf("%d of %d logins failed; first: %v", f, k, firstErr.Load())
		}
	}
	settle := func() int64 {
		time.Sleep(2 * time.Second)
		return child.rss(t)
	}
	const baseline = 100
	open(baseline)
	base := settle()
	start := time.Now()
	open(n - baseline)
	took := time.Since(start)
	full := settle()
	cpu0 := cpuTime(t, child.pid)
	time.Sleep(10 * time.Second)
	idleCPU := cpuTime(t, child.pid) - cpu0

	var ok atomic.Int64
	var wg sync.WaitGroup
	ch := make(chan *idleConn)
	for range 32 {
		wg.Go(func() {
			for c := range ch {
				if c.noop() == nil {
					ok.Add(1)
				}
			}
		})
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()

	per := float64(full-base) * 1024 / float64(n-baseline)
	fmt.Printf("%d idle IMAP sessions through the proxy (TLS upstream), proxy process only:\n", n)
	fmt.Printf("  logins          %d in %v (%.0f/s, 32 at a time)\n", n-baseline, took.Round(time.Millisecond), float64(n-baseline)/took.Seconds())
	fmt.Printf("  RSS             %d KiB with %d sessions, %d KiB with %d: %.1f KiB per session (goal <= 64)\n", base, baseline, full, n, per/1024)
	fmt.Printf("  CPU while idle  %v over 10 s\n", idleCPU)
	fmt.Printf("  alive after     %d of %d answered NOOP\n", ok.Load(), len(conns))
	if int(ok.Load()) != len(conns) {
		t.Errorf("%d sessions dropped", len(conns)-int(ok.Load()))
	}
}

type idleConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialIdle(addr string) (*idleConn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReaderSize(c, 512)
	if _, err := r.ReadString('\n'); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	io.WriteString(c, "a LOGIN "+testEmail+" "+quoteIMAP(testPass)+"\r\n")
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "a OK") {
		c.Close()
		return nil, fmt.Errorf("login: %q %v", l, err)
	}
	c.SetDeadline(time.Time{})
	return &idleConn{c, r}, nil
}

func (c *idleConn) noop() error {
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c.c, "n NOOP\r\n")
	l, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "n OK") {
		return fmt.Errorf("noop: %q %v", l, err)
	}
	return nil
}
