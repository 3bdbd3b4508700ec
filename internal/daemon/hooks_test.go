package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/tokens"
)

// readEnv reads the environment a hook recorded with `env > FILE`.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not run: %v", err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

func waitHooks(t *testing.T, d *Daemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.hooks.wait(ctx)
}

// TestHooksAndMetrics: a real refresh through the daemon runs on_token
// with the facts in its environment and no token or other secret, and the
// metrics listener on 127.0.0.1 reports the refresh and the expiry.
func TestHooksAndMetrics(t *testing.T) {
	t.Setenv("MAILOAUTH_TEST_SECRET", "s3cret-from-an-env-reference")
	e := newEnv(t, time.Now().Add(-time.Minute))
	hooks := filepath.Join(e.dir, "hooks")
	os.Mkdir(hooks, 0o700)
	rec := `env > "` + hooks + `/$MAILOAUTH_EVENT.env"`
	r := e.start(Options{Metrics: "127.0.0.1:0", Hooks: Hooks{OnToken: rec, OnError: rec, OnRelogin: rec}})

	tok, _, err := r.client.Token(t.Context(), "work", "imap")
	if err != nil {
		t.Fatal(err)
	}
	waitHooks(t, r.d)
	env := readEnv(t, filepath.Join(hooks, "refreshed.env"))
	got := map[string]string{"event": env["MAILOAUTH_EVENT"], "account": env["MAILOAUTH_ACCOUNT"], "resource": env["MAILOAUTH_RESOURCE"]}
	want := map[string]string{"event": "refreshed", "account": "work", "resource": "mail"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hook environment (-want +got)\n%s", diff)
	}
	if exp, err := time.Parse(time.RFC3339, env["MAILOAUTH_EXPIRY"]); err != nil || !exp.Equal(tok.Expiry.Truncate(time.Second)) {
		t.Errorf("MAILOAUTH_EXPIRY = %q, want %v", env["MAILOAUTH_EXPIRY"], tok.Expiry)
	}
	if env["PATH"] == "" {
		t.Errorf("hook has no PATH")
	}
	for k, v := range env {
		for _, secret := range []string{tok.AccessToken, "rt-1", "rt-0", "s3cret"} {
			if strings.Contains(v, secret) {
				t.Errorf("hook environment %s holds a secret (%s)", k, secret)
			}
		}
	}

	// A refresh error (reported by the engine) runs on_error with the reason.
	r.d.Notify(tokens.Event{Type: tokens.EventError, Account: "work", Resource: "mail", Err: errors.New("refresh work: HTTP 503")})
	waitHooks(t, r.d)
	if env := readEnv(t, filepath.Join(hooks, "error.env")); env["MAILOAUTH_REASON"] != "refresh work: HTTP 503" {
		t.Errorf("on_error reason = %q", env["MAILOAUTH_REASON"])
	}

	resp, err := http.Get("http://" + r.d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := string(body)
	for _, want := range []string{
		`mailoauth_refresh_total{account="work",resource="mail"} 1`,
		`mailoauth_refresh_errors_total{account="work",kind="error",resource="mail"} 1`,
		`mailoauth_socket_requests_total{outcome="ok"} 1`,
		`mailoauth_token_expiry_seconds{account="work",resource="mail"} 3`, // 3599.x
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("metrics lack %s\n%s", want, scrape)
		}
	}
	if strings.Contains(scrape, tok.AccessToken) || strings.Contains(scrape, "go_goroutines") {
		t.Errorf("metrics hold a token or the default registry's series")
	}
}

// TestLoginLogoutHooks: on_token also runs when the daemon finds a new
// login ("new") and when an account's token leaves the store ("removed",
// a logout), like pizauth's token_event_cmd.
func TestLoginLogoutHooks(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	hooks := filepath.Join(e.dir, "hooks")
	os.Mkdir(hooks, 0o700)
	// Written then renamed, so the test never reads a half-written file (it
	// cannot wait for the hooks while the scheduler may start more).
	r := e.start(Options{Hooks: Hooks{OnToken: `env > "` + hooks + `/.$MAILOAUTH_EVENT" && mv "` + hooks + `/.$MAILOAUTH_EVENT" "` + hooks + `/$MAILOAUTH_EVENT.env"`}})
	waitFor := func(event string) map[string]string {
		t.Helper()
		path := filepath.Join(hooks, event+".env")
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return readEnv(t, path)
			}
		}
		t.Fatalf("no %s hook", event)
		return nil
	}
	// The first scan finds the login already there: no "new" for it.
	for deadline := time.Now().Add(10 * time.Second); len(jobNames(r.d)) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.store.Delete(t.Context(), "work"); err != nil { // mailoauth logout work
		t.Fatal(err)
	}
	r.d.Rescan()
	if env := waitFor("removed"); env["MAILOAUTH_ACCOUNT"] != "work" || env["MAILOAUTH_RESOURCE"] != "mail" {
		t.Errorf("removed hook environment: %v", env)
	}
	e.login("rt-5", "at-5", time.Now().Add(time.Hour)) // mailoauth login work
	r.d.Rescan()
	if env := waitFor("new"); env["MAILOAUTH_ACCOUNT"] != "work" || env["MAILOAUTH_RESOURCE"] != "mail" {
		t.Errorf("new hook environment: %v", env)
	}
}

// TestReloginHook: a refresh token the server refuses runs on_relogin with
// the reason and the command to run.
func TestReloginHook(t *testing.T) {
	e := newEnv(t, time.Now().Add(-time.Minute))
	e.idp.set(func(f *fakeIdP) { f.fail = "invalid_grant" })
	out := filepath.Join(e.dir, "relogin.env")
	r := e.start(Options{Hooks: Hooks{OnRelogin: `env > "` + out + `"`}})
	_, _, err := r.client.Token(t.Context(), "work", "imap")
	if !errors.Is(err, tokens.ErrReloginRequired) {
		t.Fatalf("err = %v, want ErrReloginRequired", err)
	}
	waitHooks(t, r.d)
	env := readEnv(t, out)
	if env["MAILOAUTH_EVENT"] != "relogin" || env["MAILOAUTH_COMMAND"] != "mailoauth login work" || !strings.Contains(env["MAILOAUTH_REASON"], "invalid_grant") {
		t.Errorf("relogin hook environment: %v", env)
	}
}

// TestHookTimeout: a hook that outlives its timeout is killed with its
// children, and waiting for hooks at shutdown is bounded.
func TestHookTimeout(t *testing.T) {
	dir := shortTemp(t)
	pidFile := filepath.Join(dir, "child.pid")
	h := &hookRunner{hooks: Hooks{OnError: `sleep 30 & echo $! > "` + pidFile + `"; wait`}, timeout: 300 * time.Millisecond, log: testLogger(t)}
	start := time.Now()
	h.run(hookEvent{Event: "error", Account: "work"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.wait(ctx)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("hook ran %v with a 300ms timeout", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The background child is in the hook's process group: killed too. A
	// SIGKILL takes effect when the child next runs, which on a loaded
	// machine can be a while: wait for it to be gone or a zombie.
	pid := strings.TrimSpace(string(b))
	dead := func() bool {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	}
	for deadline := time.Now().Add(5 * time.Second); !dead() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !dead() {
		t.Errorf("the hook's child %s survived the timeout", pid)
	}
}

// TestHooksStopped: once the shutdown has begun, a late event (a refresh
// detached from a request ending) starts no hook.
func TestHooksStopped(t *testing.T) {
	dir := shortTemp(t)
	ran := filepath.Join(dir, "ran")
	h := &hookRunner{hooks: Hooks{OnToken: `touch "` + ran + `"`}, timeout: 10 * time.Second, log: testLogger(t)}
	h.run(hookEvent{Event: "refreshed", Account: "work"})
	h.stop(t.Context())
	if _, err := os.Stat(ran); err != nil {
		t.Fatalf("the hook started before the shutdown did not run: %v", err)
	}
	os.Remove(ran)
	h.run(hookEvent{Event: "refreshed", Account: "work"})
	h.wait(t.Context())
	if _, err := os.Stat(ran); err == nil {
		t.Error("a hook ran after the shutdown began")
	}
}
