package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailoauth/mailoauth/mailclient"
)

// The benchmarks that measure the proxy's own memory and CPU run it in a
// child process (this test binary again, with MAILOAUTH_BENCH_CHILD=1), so
// the clients, the fake upstream and the test's own allocations are not
// counted: the figures are the child's /proc RSS and CPU times.

// runBenchChild is the child: one IMAP proxy listener in front of
// $BENCH_UPSTREAM with the constant token $BENCH_TOKEN and the password
// file $BENCH_PWFILE. It prints "ADDR host:port" and serves until stdin
// closes.
func runBenchChild() int {
	raiseNoFile(1 << 16)
	up, err := mailclient.ParseURL(os.Getenv("BENCH_UPSTREAM"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	upTLS, err := mailclient.TLSConfig(os.Getenv("BENCH_CA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tok := os.Getenv("BENCH_TOKEN")
	srv, err := New(Config{
		Protocol:       "imap",
		Accounts:       []Account{{Name: "work", Email: testEmail, Upstream: up, UpstreamTLS: upTLS}},
		Token:          func(context.Context, string, string) (string, error) { return tok, nil },
		Passwords:      OpenPasswordFile(os.Getenv("BENCH_PWFILE")),
		MaxConnections: 1 << 16,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go srv.Serve(ln)
	// SIGUSR1: collect and return freed memory to the OS before the parent
	// reads VmRSS, so the one-off argon2id buffers (19 MiB per check) of
	// the first logins are not counted as the sessions' memory.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
			fmt.Println("FREED")
		}
	}()
	fmt.Printf("ADDR %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// childProxy is a running child proxy.
type childProxy struct {
	addr string
	pid  int
	out  *bufio.Reader
}

// rss returns the child's VmRSS in KiB after it returned freed memory to
// the OS.
func (c *childProxy) rss(t *testing.T) int64 {
	t.Helper()
	syscall.Kill(c.pid, syscall.SIGUSR1)
	if l, err := c.out.ReadString('\n'); err != nil || l != "FREED\n" {
		t.Fatalf("child proxy: %q %v", l, err)
	}
	return rssKiB(t, c.pid)
}

func startChildProxy(t *testing.T, upstream, caFile, token, pwFile string) *childProxy {
	t.Helper()
	return startChild(t, "MAILOAUTH_BENCH_CHILD=1", "BENCH_UPSTREAM="+upstream, "BENCH_CA="+caFile,
		"BENCH_TOKEN="+token, "BENCH_PWFILE="+pwFile)
}

// startChild runs this test binary as a benchmark child with env added.
func startChild(t *testing.T, env ...string) *childProxy {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("child proxy: %q %v", line, err)
	}
	return &childProxy{addr: addr, pid: cmd.Process.Pid, out: out}
}

// rssKiB is the process's resident set (VmRSS) in KiB.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat(5)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// raiseNoFile raises RLIMIT_NOFILE to n (the hard limit too when allowed).
func raiseNoFile(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		return fmt.Errorf("raise the descriptor limit to %d (hard limit %d): %w", n, lim.Max, err)
	}
	return nil
}

// runBenchUpstream is the idle upstream's process (its descriptors must
// not count against the clients' or the proxy's): TLS with the certificate
// and key in $BENCH_CERT (PEM), "ADDR host:port" on stdout, until stdin
// closes.
func runBenchUpstream() int {
	raiseNoFile(1 << 16)
	cert, err := tls.LoadX509KeyPair(os.Getenv("BENCH_CERT"), os.Getenv("BENCH_CERT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go idleUpstream(ln)
	fmt.Printf("ADDR %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	ln.Close()
	return 0
}

// idleUpstream is a minimal IMAP server over implicit TLS for the
// 10,000-connection figure (the Dovecot of the integration setup serves
// 1,000 clients per process by default and its config is not this
// package's): it takes any XOAUTH2 login, answers NOOP, and otherwise
// holds the connection, one goroutine each.
func idleUpstream(ln net.Listener) {
	func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReaderSize(c, 1024)
				io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] idle upstream\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, rest, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
					cmd, _, _ := strings.Cut(rest, " ")
					switch strings.ToUpper(cmd) {
					case "CAPABILITY":
						io.WriteString(c, "* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\n"+tag+" OK done\r\n")
					case "AUTHENTICATE":
						io.WriteString(c, tag+" OK Logged in\r\n")
					case "LOGOUT":
						io.WriteString(c, "* BYE bye\r\n"+tag+" OK done\r\n")
						return
					default:
						io.WriteString(c, tag+" OK done\r\n")
					}
				}
			}()
		}
	}()
}
