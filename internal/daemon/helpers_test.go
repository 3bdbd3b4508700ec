package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeIdP is an OpenID provider on 127.0.0.1: discovery and a token
// endpoint that rotates the refresh token on every refresh and refuses any
// refresh token but the latest, as Microsoft and Google can.
type fakeIdP struct {
	srv *httptest.Server

	mu       sync.Mutex
	latestRT string
	hits     int
	fail     string        // OAuth error code to answer with, "" = succeed
	block    chan struct{} // when set, /token waits for it to close
	entered  chan struct{} // when set, /token signals it has a request
	lifetime time.Duration
}

func newFakeIdP(t testing.TB) *fakeIdP {
	t.Helper()
	f := &fakeIdP{latestRT: "rt-0", lifetime: time.Hour}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := f.srv.URL
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("POST /token", f.token)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits++
	n := f.hits
	block, entered, fail := f.block, f.entered, f.fail
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	rt := r.PostFormValue("refresh_token")
	f.mu.Lock()
	defer f.mu.Unlock()
	if fail == "" && (r.PostFormValue("grant_type") != "refresh_token" || rt != f.latestRT) {
		fail = "invalid_grant"
	}
	if fail != "" {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": fail, "error_description": "refresh token refused"})
		return
	}
	f.latestRT = fmt.Sprintf("rt-%d", n)
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer", "expires_in": int(f.lifetime.Seconds()),
		"refresh_token": f.latestRT, "scope": r.PostFormValue("scope"),
	})
}

func (f *fakeIdP) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func (f *fakeIdP) set(fn func(f *fakeIdP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// shortTemp is a temporary directory with a short path: a Unix socket path
// must fit in 108 bytes, and t.TempDir() embeds the test's name.
func shortTemp(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// env is one account "work" on the fake provider, with a SQLite store
// seeded as a login left it: access token at-0 expiring at exp, refresh
// token rt-0.
type env struct {
	t     testing.TB
	idp   *fakeIdP
	dir   string
	sock  string
	cfg   *config.Config
	store tokens.Store
	// wrap, when set, wraps the daemon's Accounts (to watch its calls).
	wrap func(Accounts) Accounts
}

// watchAccounts calls onToken before each Token call.
type watchAccounts struct {
	Accounts
	onToken func(account, resource string)
}

func (w watchAccounts) Token(ctx context.Context, account, resource string) (*oauth.Token, time.Time, error) {
	w.onToken(account, resource)
	return w.Accounts.Token(ctx, account, resource)
}

const testConfig = `
store = "sqlite:{dir}/tokens.db"

[accounts.work]
provider = "oidc"
issuer = "{url}"
client_id = "mailoauth-test"
email = "alice@example.com"
scopes = ["mail.read", "offline_access"]

[accounts.idle]
provider = "oidc"
issuer = "{url}"
client_id = "mailoauth-test"
scopes = ["mail.read", "offline_access"]

[serve]
socket = "{sock}"
`

func newEnv(t testing.TB, exp time.Time) *env {
	t.Helper()
	e := &env{t: t, idp: newFakeIdP(t), dir: shortTemp(t)}
	e.sock = filepath.Join(e.dir, "run", "d.sock")
	text := strings.NewReplacer("{dir}", e.dir, "{url}", e.idp.srv.URL, "{sock}", e.sock).Replace(testConfig)
	cfg, err := config.Parse(filepath.Join(e.dir, "config.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	key := make([]byte, tokens.KeySize)
	rand.Read(key)
	st, err := tokens.Open(t.Context(), cfg.Store, &tokens.Options{Key: key, NoKeyring: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.login("rt-0", "at-0", exp)
	return e
}

// login stores what a login of "work" returns.
func (e *env) login(rt, at string, exp time.Time) {
	e.t.Helper()
	tok := &oauth.Token{AccessToken: at, TokenType: "Bearer", RefreshToken: rt, Expiry: exp, Scope: []string{"mail.read"}}
	if err := tokens.SaveLogin(context.Background(), e.store, "work", "mail", tok); err != nil {
		e.t.Fatal(err)
	}
}

// running is a daemon serving e's accounts until the test ends.
type running struct {
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
	client *Client
}

// start runs a daemon over e's accounts through account.Manager, as
// `mailoauth serve` does; opts.Socket defaults to e.sock.
func (e *env) start(opts Options) *running {
	e.t.Helper()
	if opts.Socket == "" {
		opts.Socket = e.sock
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(e.t)
	}
	d, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		e.t.Fatal(err)
	}
	aopts := account.Options{Store: e.store, Logger: opts.Logger,
		Source: tokens.Config{Notify: d.Notify, Holder: Holder(opts.Socket), Jitter: -1, Logger: opts.Logger}}
	m, err := account.Open(e.t.Context(), e.cfg, aopts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1), client: &Client{Socket: opts.Socket}}
	acc := FromManager(m, aopts)
	if e.wrap != nil {
		acc = e.wrap(acc)
	}
	go func() { r.done <- d.Serve(ctx, acc) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop cancels the daemon and waits for Serve; it may be called twice.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	return nil
}

// testLogger collects the daemon's log and prints it if the test fails
// (t.Log cannot be called once the test is over, and detached goroutines
// may still log then).
func testLogger(t testing.TB) *slog.Logger {
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("daemon log:\n" + b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
