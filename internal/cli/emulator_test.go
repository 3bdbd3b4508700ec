package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/emulator"
)

// lockedBuffer is a bytes.Buffer safe for the command goroutine and the
// test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// emulatorCmd is `mailoauth emulator` running in-process, as Main runs
// it: cancelling its context is the SIGINT/SIGTERM Main turns into one.
type emulatorCmd struct {
	out, errOut lockedBuffer
	cancel      context.CancelFunc
	done        chan int
}

// startEmulatorCmd runs `mailoauth ARGS...` and waits until ready(stdout)
// holds; the command must not exit before.
func startEmulatorCmd(t *testing.T, ready func(stdout string) bool, args ...string) *emulatorCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &emulatorCmd{cancel: cancel, done: make(chan int, 1)}
	t.Cleanup(cancel)
	g := &Globals{In: strings.NewReader(""), Out: &c.out, ErrOut: &c.errOut}
	go func() { c.done <- Run(ctx, g, args) }()
	for deadline := time.Now().Add(10 * time.Second); !ready(c.out.String()); {
		select {
		case code := <-c.done:
			t.Fatalf("emulator exited early with %d: %s", code, c.errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator not ready after 10s; stdout %q, stderr %q", c.out.String(), c.errOut.String())
		}
	}
	return c
}

// services reads the "NAME URL" lines the emulator prints.
func services(stdout string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// stop interrupts the command and checks it ends with exit code 0.
func (c *emulatorCmd) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case code := <-c.done:
		if code != ExitOK {
			t.Errorf("exit code %d after interrupt: %s", code, c.errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop")
	}
}

func TestEmulatorCommand(t *testing.T) {
	dir := t.TempDir()
	caPath, certPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "app.pem")
	c := startEmulatorCmd(t, func(out string) bool { return services(out)["graph"] != "" },
		"emulator", "--listen", "127.0.0.1:0", "--ca-out", caPath, "--write-app-cert", certPath)
	url := services(c.out.String())["identity"]
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("no identity line in %q", c.out.String())
	}
	pool := caOutPool(t, caPath)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url + "/common/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("discovery: %d", resp.StatusCode)
	}
	if b, err := os.ReadFile(certPath); err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Errorf("--write-app-cert: %v", err)
	}
	if !strings.Contains(c.errOut.String(), "users: alice@contoso.com (password Alice-Pa55word), bob@contoso.com (password Bob-Pa55word)\n") {
		t.Errorf("stderr does not say how to sign in: %q", c.errOut.String())
	}
	if strings.Contains(c.errOut.String(), "level=") {
		t.Errorf("logs on stderr without -v: %q", c.errOut.String())
	}
	c.stop(t)
}

func TestEmulatorCommandRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[settings]\nthrotle = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badValue := filepath.Join(dir, "bad-value.toml")
	if err := os.WriteFile(badValue, []byte("[[tenants]]\nid = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"bad scenario", []string{"emulator", "--listen", "127.0.0.1:0", "--scenario", bad}, ExitConfig},
		{"bad scenario value", []string{"emulator", "--listen", "127.0.0.1:0", "--scenario", badValue}, ExitConfig},
		{"missing scenario", []string{"emulator", "--listen", "127.0.0.1:0", "--scenario", filepath.Join(dir, "none.toml")}, ExitConfig},
		{"non-loopback listen", []string{"emulator", "--listen", "0.0.0.0:0"}, ExitError},
		{"unknown flag", []string{"emulator", "--nope"}, ExitUsage},
		{"argument", []string{"emulator", "extra"}, ExitUsage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut lockedBuffer
			g := &Globals{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
			if code := Run(context.Background(), g, tc.args); code != tc.code {
				t.Errorf("exit code %d, want %d (%s)", code, tc.code, errOut.String())
			}
		})
	}
}

// TestEmulatorCommandScenarioJSON runs the fixed command line with
// --scenario, --http and --json: the scenario's tenant is served over plain
// HTTP, --json prints the services and demo values as one JSON object, and
// without --ca-out a warning says clients cannot verify the TLS servers.
func TestEmulatorCommandScenarioJSON(t *testing.T) {
	const tenant = "7d9e2a41-5c3b-4f18-8a6d-2e4b9c1f0a57"
	sc := strings.ReplaceAll(string(emulator.DefaultScenario()), "4a1f7d2e-3b5c-4e8a-9d61-0c2b7e5f9a13", tenant)
	file := filepath.Join(t.TempDir(), "scenario.toml")
	if err := os.WriteFile(file, []byte(sc), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startEmulatorCmd(t, func(out string) bool { return strings.HasSuffix(out, "\n") },
		"-vv", "emulator", "--listen", "127.0.0.1:0", "--scenario", file, "--http", "--json")
	var got struct {
		Services []emulator.Service  `json:"services"`
		Demo     emulator.DemoValues `json:"demo"`
	}
	if err := json.Unmarshal([]byte(c.out.String()), &got); err != nil {
		t.Fatalf("--json output %q: %v", c.out.String(), err)
	}
	var names []string
	for _, s := range got.Services {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"identity", "imap", "pop3", "smtp", "graph"}, names); diff != "" {
		t.Errorf("services (-want +got)\n%s", diff)
	}
	if got.Demo.TenantID != tenant {
		t.Errorf("demo tenant %q, want the scenario's %s", got.Demo.TenantID, tenant)
	}
	identity := got.Services[0].URL
	if !strings.HasPrefix(identity, "http://127.0.0.1:") {
		t.Fatalf("identity %q, want plain http on 127.0.0.1", identity)
	}
	resp, err := http.Get(identity + "/" + tenant + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer string `json:"issuer"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || disc.Issuer != identity+"/"+tenant+"/v2.0" {
		t.Errorf("discovery: %d %+v %v", resp.StatusCode, disc, err)
	}
	// -vv turns on debug logs: each request is logged (without its query).
	if !strings.Contains(c.errOut.String(), `level=DEBUG msg="emulator request" method=GET path=/`+tenant+`/v2.0/.well-known/openid-configuration`) {
		t.Errorf("-vv: no debug log of the request on stderr: %q", c.errOut.String())
	}
	if !strings.Contains(c.errOut.String(), "warning: no --ca-out FILE") {
		t.Errorf("no --ca-out warning on stderr: %q", c.errOut.String())
	}
	c.stop(t)
}

// caOutPool reads the CA certificate `emulator --ca-out` wrote to path into
// a pool, failing the test when it is missing or not PEM.
func caOutPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	caPEM, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("--ca-out is not a PEM certificate")
	}
	return pool
}
