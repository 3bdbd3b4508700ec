// Package dovecot starts a real, throwaway Dovecot 2.3 (Debian's
// dovecot-imapd, -pop3d, -submissiond) on 127.0.0.1 high ports for
// integration tests: IMAP, POP3 and submission, each with STARTTLS and with
// implicit TLS, validating OAuth tokens (XOAUTH2 and OAUTHBEARER) locally as
// JWTs signed by keys the test holds (RS256 and PS256), or by introspection
// against a URL the test gives. Submitted mail is relayed to Postfix's
// smtp-sink, which writes each message to a file the test can read.
//
// The recipe and every non-obvious setting come from
// ../shared/reference/dovecot-oauth2.md (pitfalls P1–P14): no auth failure
// delay, anvil auth penalty off, a fresh base_dir, chroot off and all
// processes as one unprivileged user (nobody when the test runs as root),
// auth_debug off (it logs tokens).
//
//	dovecot.SkipUnlessEnabled(t)
//	srv := dovecot.Start(t, dovecot.Options{})
//	tok := srv.Token(t, "alice@example.test", jose.RS256, time.Hour)
//	// connect to srv.URL("imaps") trusting srv.CAFile
package dovecot

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Binaries the helper runs; installed by .ci/setup.d/40-dovecot.sh.
const (
	DovecotBin  = "/usr/sbin/dovecot"
	SmtpSinkBin = "/usr/sbin/smtp-sink"
)

// SkipUnlessEnabled skips the test unless MAILOAUTH_INTEGRATION=1, and
// fails it when integration is on but Dovecot is not installed (CI must
// not pass by skipping).
func SkipUnlessEnabled(t testing.TB) {
	t.Helper()
	if os.Getenv("MAILOAUTH_INTEGRATION") != "1" {
		t.Skip("integration test: set MAILOAUTH_INTEGRATION=1 (needs Dovecot, see .ci/setup.d/40-dovecot.sh)")
	}
	for _, bin := range []string{DovecotBin, SmtpSinkBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s missing: run .ci/setup.d/40-dovecot.sh as root", bin)
		}
	}
}

// Options shape the Dovecot instance. The zero value gives local JWT
// validation, both mechanisms, TLS listeners.
type Options struct {
	// Mechanisms advertised; default oauthbearer and xoauth2. ["xoauth2"]
	// mimics Exchange (and is the only way to make curl use XOAUTH2).
	Mechanisms []string
	// Issuer is the only accepted "iss" (default https://idp.example.test).
	Issuer string
	// IntrospectionURL, when set, adds an introspection passdb after the
	// local JWT one (opaque tokens fall through to it), e.g. an
	// oidc-provider's introspection endpoint on 127.0.0.1.
	IntrospectionURL string
	// IntrospectionMode is post (default), get or auth.
	IntrospectionMode string
	// IntrospectionClientID and IntrospectionClientSecret are sent with
	// each introspection request (client_secret_post), as an OAuth
	// server such as oidc-provider requires of introspecting clients.
	IntrospectionClientID, IntrospectionClientSecret string
	// UsernameAttribute is the claim (JWT or introspection answer) that
	// must equal the SASL user; default "email".
	UsernameAttribute string
	// NoLocalJWT leaves only the introspection passdb.
	NoLocalJWT bool
}

// Server is a running Dovecot with its smtp-sink.
type Server struct {
	Dir  string // config, keys, mail, logs (the test's temp dir)
	Host string // always 127.0.0.1
	// Ports of the listeners.
	IMAP, IMAPS, POP3, POP3S, Submission, Submissions, LMTP, Sink int
	// CAFile is the PEM certificate the server presents (self-signed, for
	// 127.0.0.1 and localhost); trust it to connect with TLS.
	CAFile string
	// Issuer is the "iss" Dovecot accepts; Token signs with it.
	Issuer string

	key     *rsa.PrivateKey
	runDir  string
	sinkDir string
	master  *exec.Cmd
	sink    *exec.Cmd
	exited  chan struct{}
}

// Start writes the configuration into t.TempDir(), starts smtp-sink and
// Dovecot, waits until every listener accepts, and registers the stop with
// t.Cleanup. A port taken between choosing and binding (Dovecot exits 89)
// is retried with fresh ports.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, opts)
		if err == nil {
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("start dovecot: %v", lastErr)
	return nil
}

var errPortInUse = errors.New("port in use")

func start(t testing.TB, opts Options) (*Server, error) {
	if len(opts.Mechanisms) == 0 {
		opts.Mechanisms = []string{"oauthbearer", "xoauth2"}
	}
	if opts.Issuer == "" {
		opts.Issuer = "https://idp.example.test"
	}
	if opts.IntrospectionMode == "" {
		opts.IntrospectionMode = "post"
	}
	if opts.UsernameAttribute == "" {
		opts.UsernameAttribute = "email"
	}
	run, err := runAs()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	// The run user must be able to reach dir: open up its parent (the
	// test's own temp root, 0700) for traversal only.
	if os.Geteuid() == 0 {
		os.Chmod(filepath.Dir(dir), 0o711)
		os.Chmod(dir, 0o755)
	}
	// base_dir holds unix sockets (108-byte path limit) and must start
	// empty (P1), so it gets its own short fresh directory.
	runDir, err := os.MkdirTemp("", "dcrun")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })

	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Dir: dir, Host: "127.0.0.1", Issuer: opts.Issuer, runDir: runDir,
		IMAP: ports[0], IMAPS: ports[1], POP3: ports[2], POP3S: ports[3],
		Submission: ports[4], Submissions: ports[5], LMTP: ports[6], Sink: ports[7],
		sinkDir: filepath.Join(dir, "sink"),
		exited:  make(chan struct{}),
	}
	for _, d := range []string{"conf", "keydict/default/RS256", "keydict/default/PS256", "tls", "state", "logs", "mail", "sink"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.writeKeys(); err != nil {
		return nil, err
	}
	if err := s.writeConfig(opts, run); err != nil {
		return nil, err
	}
	if err := chownTree(dir, run); err != nil {
		return nil, err
	}
	if err := chownTree(runDir, run); err != nil {
		return nil, err
	}
	t.Cleanup(s.stop)
	if err := s.startSink(run); err != nil {
		return nil, err
	}
	if err := s.startDovecot(run); err != nil {
		return nil, err
	}
	return s, nil
}

// runUser is who Dovecot runs as.
type runUser struct {
	name, group string
	uid, gid    int
}

// runAs returns nobody:nogroup when we are root (Dovecot refuses nothing,
// but the tests must show it works unprivileged), else the current user.
func runAs() (runUser, error) {
	var u *user.User
	var err error
	if os.Geteuid() == 0 {
		u, err = user.Lookup("nobody")
	} else {
		u, err = user.Current()
	}
	if err != nil {
		return runUser{}, fmt.Errorf("run user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return runUser{}, fmt.Errorf("run group: %w", err)
	}
	return runUser{name: u.Username, group: g.Name, uid: uid, gid: gid}, nil
}

func chownTree(root string, u runUser) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
}

// freePorts returns n distinct free loopback ports (held open together
// while choosing, so they differ).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) writeKeys() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	s.key = key
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	// Key dict layout: <prefix>/<azp or "default">/<alg>/<kid or
	// "default">; PS256 needs its own copy of the same RSA key.
	for _, alg := range []string{"RS256", "PS256"} {
		if err := os.WriteFile(filepath.Join(s.Dir, "keydict/default", alg, "default"), pubPEM, 0o644); err != nil {
			return err
		}
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.Dir, "tls/cert.pem")
	if err := os.WriteFile(s.CAFile, certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "tls/key.pem"), keyPEM, 0o600)
}

func (s *Server) startSink(u runUser) error {
	out, err := os.Create(filepath.Join(s.Dir, "logs/smtp-sink.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(SmtpSinkBin, "-4", "-h", "sink.example.test",
		"-d", s.sinkDir+"/%Y%m%d%H%M%S.", net.JoinHostPort(s.Host, strconv.Itoa(s.Sink)), "50")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr(u)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start smtp-sink: %w", err)
	}
	s.sink = cmd
	go cmd.Wait()
	return waitPort(s.Host, s.Sink, nil, 10*time.Second)
}

func (s *Server) startDovecot(u runUser) error {
	out, err := os.Create(filepath.Join(s.Dir, "logs/dovecot.stdout"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(DovecotBin, "-F", "-c", filepath.Join(s.Dir, "conf/dovecot.conf"))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr(u)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dovecot: %w", err)
	}
	s.master = cmd
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	for _, p := range []int{s.IMAP, s.IMAPS, s.POP3, s.POP3S, s.Submission, s.Submissions, s.LMTP} {
		if err := waitPort(s.Host, p, s.exited, 10*time.Second); err != nil {
			logs, _ := os.ReadFile(filepath.Join(s.Dir, "logs/dovecot.stdout"))
			code := -1
			select {
			case <-s.exited:
				code = cmd.ProcessState.ExitCode()
			default:
			}
			if code == 89 {
				return fmt.Errorf("%w: %s", errPortInUse, logs)
			}
			return fmt.Errorf("dovecot not ready (exit code %d): %w\n%s\n%s", code, err, logs, s.Log())
		}
	}
	return nil
}

func procAttr(u runUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		a.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
	}
	return a
}

// waitPort polls until host:port accepts (Dovecot logs each probe as
// "disconnected before auth was ready", P9: harmless).
func waitPort(host string, port int, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("process exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting after %v: %w", addr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends Dovecot (SIGTERM to the master, which stops its children; a
// graceful stop takes 1–3 s, P2) and smtp-sink, killing their process
// groups if they do not exit in time. Only processes this helper started
// are signalled.
func (s *Server) stop() {
	if s.master != nil && s.master.Process != nil {
		s.master.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-s.master.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	if s.sink != nil && s.sink.Process != nil {
		syscall.Kill(-s.sink.Process.Pid, syscall.SIGKILL)
	}
}

// Log returns Dovecot's log so far (auth_verbose is on, so each failed
// login says why; auth_debug is off because it would log tokens).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "logs/dovecot.log"))
	return string(b)
}

// URL returns the server URL for a scheme: imaps, imap, pop3s, pop3,
// smtps, smtp, or any of them with "+insecure".
func (s *Server) URL(scheme string) string {
	ports := map[string]int{
		"imaps": s.IMAPS, "imap": s.IMAP, "pop3s": s.POP3S, "pop3": s.POP3,
		"smtps": s.Submissions, "smtp": s.Submission,
	}
	p, ok := ports[strings.TrimSuffix(scheme, "+insecure")]
	if !ok {
		panic("dovecot: unknown scheme " + scheme)
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(p))
}

// Token mints a JWT Dovecot accepts for email: typ JWT, sub and email set
// to email, iss = s.Issuer, signed with alg (jose.RS256 or jose.PS256).
// ttl <= 0 gives a token that expired -ttl ago (at least a minute).
func (s *Server) Token(t testing.TB, email string, alg jose.SignatureAlgorithm, ttl time.Duration) string {
	t.Helper()
	return s.TokenWithClaims(t, alg, ttl, map[string]any{"sub": email, "email": email, "iss": s.Issuer})
}

// TokenWithClaims mints a JWT with the given claims plus iat and exp.
func (s *Server) TokenWithClaims(t testing.TB, alg jose.SignatureAlgorithm, ttl time.Duration, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	exp := now.Add(ttl)
	if ttl <= 0 {
		exp = now.Add(min(ttl, -time.Minute))
	}
	// iat a little in the past: Dovecot allows no clock skew for iat/nbf.
	std := jwt.Claims{IssuedAt: jwt.NewNumericDate(now.Add(-5 * time.Second)), Expiry: jwt.NewNumericDate(exp)}
	tok, err := jwt.Signed(sig).Claims(std).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
