package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mailoauth/mailoauth/oauth"
)

// fakeServer is a token endpoint in memory: it rotates the refresh token on
// every refresh and refuses any refresh token but the latest, as Microsoft
// and Google can. fail, when set, decides the outcome of call n (1-based).
type fakeServer struct {
	mu       sync.Mutex
	n        int
	latestRT string
	lifetime time.Duration
	delay    time.Duration
	calls    []call
	fail     func(n int) error
}

type call struct {
	At     time.Duration // since the bubble started
	RT     string
	Scopes string
}

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // synctest's start time

func newFakeServer() *fakeServer { return &fakeServer{latestRT: "rt-0", lifetime: time.Hour} }

func (f *fakeServer) Refresh(ctx context.Context, rt string, scopes []string) (*oauth.Token, error) {
	f.mu.Lock()
	f.n++
	n := f.n
	f.calls = append(f.calls, call{At: time.Since(epoch), RT: rt, Scopes: strings.Join(scopes, " ")})
	fail, delay := f.fail, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rt != f.latestRT {
		return nil, &fakeError{code: "invalid_grant", status: 400, desc: "refresh token was already used"}
	}
	f.latestRT = fmt.Sprintf("rt-%d", n)
	return &oauth.Token{
		AccessToken:  fmt.Sprintf("at-%d", n),
		TokenType:    "Bearer",
		RefreshToken: f.latestRT,
		Expiry:       time.Now().Add(f.lifetime),
		Scope:        scopes,
	}, nil
}

func (f *fakeServer) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// fakeError is a token-endpoint error as the oauth package reports it.
type fakeError struct {
	code   string
	status int
	after  time.Duration
	desc   string
}

func (e *fakeError) Error() string             { return e.code + ": " + e.desc }
func (e *fakeError) OAuthCode() string         { return e.code }
func (e *fakeError) HTTPStatusCode() int       { return e.status }
func (e *fakeError) RetryAfter() time.Duration { return e.after }
func serverError(status int) error             { return &fakeError{status: status, desc: "unavailable"} }
func throttled(after time.Duration) error {
	return &fakeError{status: 429, after: after, desc: "slow down"}
}
func loginToken(rt, at string, exp time.Time) *oauth.Token {
	return &oauth.Token{AccessToken: at, TokenType: "Bearer", RefreshToken: rt, Expiry: exp, Scope: []string{"offline_access"}}
}

type env struct {
	store Store
	srv   *fakeServer
}

// newEnv opens a memory store holding a login (refresh token rt-0) whose
// imap access token at-0 expires at exp.
func newEnv(t *testing.T, exp time.Time) *env {
	t.Helper()
	s, err := Open(t.Context(), "mem:", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := SaveLogin(t.Context(), s, "work", "imap", loginToken("rt-0", "at-0", exp)); err != nil {
		t.Fatal(err)
	}
	return &env{store: s, srv: newFakeServer()}
}

func (e *env) source(t *testing.T, resource string, mod ...func(*Config)) *Source {
	t.Helper()
	cfg := Config{
		Store: e.store, Refresher: e.srv, Account: "work", Resource: resource,
		Scopes: []string{"https://outlook.office.com/" + strings.ToUpper(resource) + ".AccessAsUser.All"},
		Logger: slog.New(slog.DiscardHandler),
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func accessToken(t *testing.T, s *Source) string {
	t.Helper()
	tok, err := s.TokenContext(t.Context())
	if err != nil {
		t.Fatalf("TokenContext: %v", err)
	}
	return tok.AccessToken
}

func TestSourceUsesStoredToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(time.Hour))
		s := e.source(t, "imap")
		for range 3 {
			if got := accessToken(t, s); got != "at-0" {
				t.Fatalf("got %s, want the stored at-0", got)
			}
		}
		o2, err := s.Token()
		if err != nil {
			t.Fatal(err)
		}
		want := &oauth2.Token{AccessToken: "at-0", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
		if diff := cmp.Diff(want, o2, cmpOAuth2); diff != "" {
			t.Errorf("Token (-want +got):\n%s", diff)
		}
		if n := len(e.srv.Calls()); n != 0 {
			t.Errorf("%d refresh calls, want 0", n)
		}
	})
}

var cmpOAuth2 = cmp.Comparer(func(a, b *oauth2.Token) bool {
	return a.AccessToken == b.AccessToken && a.TokenType == b.TokenType && a.RefreshToken == b.RefreshToken && a.Expiry.Equal(b.Expiry)
})

// The refresh happens 5 minutes before expiry, moved earlier by at most the
// jitter, or at refresh_in when the server sent it.
func TestSourceRefreshTiming(t *testing.T) {
	tests := []struct {
		name      string
		refreshAt time.Duration // 0: none sent
		wantFrom  time.Duration // refresh not before
		wantBy    time.Duration // and done by
	}{
		{"margin", 0, 54*time.Minute + 30*time.Second, 55 * time.Minute},
		{"refresh_in hint", 30 * time.Minute, 29*time.Minute + 30*time.Second, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, time.Now().Add(time.Hour))
				if tt.refreshAt != 0 {
					tok := loginToken("rt-0", "at-0", time.Now().Add(time.Hour))
					tok.RefreshAt = time.Now().Add(tt.refreshAt)
					if err := SaveLogin(t.Context(), e.store, "work", "imap", tok); err != nil {
						t.Fatal(err)
					}
				}
				s := e.source(t, "imap")
				// Ask every second, as a busy client would.
				for time.Since(epoch) < tt.wantBy+time.Second {
					accessToken(t, s)
					time.Sleep(time.Second)
				}
				calls := e.srv.Calls()
				if len(calls) != 1 {
					t.Fatalf("calls = %+v, want exactly 1", calls)
				}
				if at := calls[0].At; at < tt.wantFrom || at > tt.wantBy {
					t.Errorf("refreshed at %v, want within [%v, %v]", at, tt.wantFrom, tt.wantBy)
				}
				if got := accessToken(t, s); got != "at-1" {
					t.Errorf("after the refresh got %s, want at-1", got)
				}
			})
		})
	}
}

// However many goroutines ask at once, one refresh; all get its token.
func TestSourceSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute)) // expired
		e.srv.delay = 2 * time.Second
		s := e.source(t, "imap")
		var wg sync.WaitGroup
		got := make([]string, 500)
		for i := range got {
			wg.Go(func() {
				tok, err := s.Token()
				if err != nil {
					t.Errorf("Token: %v", err)
					return
				}
				got[i] = tok.AccessToken
			})
		}
		wg.Wait()
		if n := len(e.srv.Calls()); n != 1 {
			t.Fatalf("%d refresh calls, want 1", n)
		}
		for i, g := range got {
			if g != "at-1" {
				t.Fatalf("goroutine %d got %q, want at-1", i, g)
			}
		}
	})
}

// Two Sources with their own holders stand for two processes sharing a
// store: the lease lets one refresh; the other waits and reads its token.
func TestSourceCrossProcessSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.delay = 3 * time.Second
		var wg sync.WaitGroup
		var mu sync.Mutex
		seen := map[string]int{}
		for p := range 4 {
			s := e.source(t, "imap", func(c *Config) { c.Holder = fmt.Sprintf("proc-%d", p) })
			for range 50 {
				wg.Go(func() {
					tok, err := s.TokenContext(t.Context())
					if err != nil {
						t.Errorf("process %d: %v", p, err)
						return
					}
					mu.Lock()
					seen[tok.AccessToken]++
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		if n := len(e.srv.Calls()); n != 1 {
			t.Errorf("%d refresh calls, want 1", n)
		}
		if diff := cmp.Diff(map[string]int{"at-1": 200}, seen); diff != "" {
			t.Errorf("tokens handed out (-want +got):\n%s", diff)
		}
	})
}

// A holder that died with the lease blocks others only until it expires.
func TestSourceCrashedLeaseHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		if _, err := e.store.Acquire(t.Context(), "work", "dead-process", 45*time.Second); err != nil {
			t.Fatal(err)
		}
		s := e.source(t, "imap")
		if got := accessToken(t, s); got != "at-1" {
			t.Fatalf("got %s", got)
		}
		calls := e.srv.Calls()
		if len(calls) != 1 || calls[0].At < 45*time.Second || calls[0].At > 46*time.Second {
			t.Errorf("calls = %+v, want one just after the dead lease expired (45s)", calls)
		}
	})
}

// The rotated refresh token is in the store when the access token is
// handed out, and a store that cannot save it gets no token handed out.
func TestSourceSavesRotatedRefreshTokenFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		var atHandout string
		e.srv.fail = nil
		s := e.source(t, "imap", func(c *Config) {
			c.Notify = func(ev Event) {
				if ev.Type == EventRefreshed {
					tok, err := LoadToken(t.Context(), e.store, "work", KindRefresh)
					if err != nil {
						t.Error(err)
						return
					}
					atHandout = tok.RefreshToken
				}
			}
		})
		if got := accessToken(t, s); got != "at-1" {
			t.Fatalf("got %s", got)
		}
		if atHandout != "rt-1" {
			t.Errorf("refresh token in the store at hand-out = %q, want the rotated rt-1", atHandout)
		}
		st, err := LoadState(t.Context(), e.store, "work")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(State{LastRefresh: time.Now()}, st); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}

		// Now a store whose writes fail: the refresh "succeeds" at the
		// server, but the caller must get an error, not the token.
		e2 := newEnv(t, time.Now().Add(-time.Minute))
		broken := failingPut{Store: e2.store}
		s2 := e2.source(t, "imap", func(c *Config) { c.Store = broken })
		if tok, err := s2.TokenContext(t.Context()); err == nil {
			t.Fatalf("got token %s although its refresh token could not be saved", tok.AccessToken)
		}
	})
}

type failingPut struct{ Store }

func (f failingPut) Put(ctx context.Context, l *Lease, recs ...Record) error {
	return errors.New("disk full")
}

// invalid_grant: the account is marked in the store, every Source fails
// fast with the command to run, and a new login clears the mark.
func TestSourceInvalidGrant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.latestRT = "rt-revoked" // the stored rt-0 is dead
		s := e.source(t, "imap")
		_, err := s.TokenContext(t.Context())
		if !errors.Is(err, ErrReloginRequired) {
			t.Fatalf("got %v, want ErrReloginRequired", err)
		}
		var re *ReloginError
		if !errors.As(err, &re) || re.Command != "mailoauth login work" || !strings.Contains(re.Reason, "invalid_grant") {
			t.Fatalf("error = %#v, want the account, reason and command", err)
		}
		st, _ := LoadState(t.Context(), e.store, "work")
		if !st.ReloginRequired || st.Command != "mailoauth login work" || !strings.Contains(st.Reason, "invalid_grant") {
			t.Errorf("state = %+v", st)
		}
		// No retry storm: this process, later, and other processes, and
		// other resources: no further call.
		for range 10 {
			s.Token()
			time.Sleep(time.Minute)
		}
		other := e.source(t, "graph", func(c *Config) { c.Holder = "other" })
		if _, err := other.TokenContext(t.Context()); !errors.Is(err, ErrReloginRequired) {
			t.Errorf("other source: got %v, want ErrReloginRequired", err)
		}
		if n := len(e.srv.Calls()); n != 1 {
			t.Errorf("%d refresh calls, want 1", n)
		}
		// The user logs in again.
		e.srv.mu.Lock()
		e.srv.latestRT = "rt-new"
		e.srv.mu.Unlock()
		if err := SaveLogin(t.Context(), e.store, "work", "", loginToken("rt-new", "", time.Time{})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // past the in-process cooldown
		if got := accessToken(t, s); got != "at-2" {
			t.Errorf("after login got %s, want at-2", got)
		}
	})
}

// 5xx and timeouts: bounded retries with growing, jittered delays.
func TestSourceTransientRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.fail = func(n int) error {
			if n <= 2 {
				return serverError(503)
			}
			return nil
		}
		s := e.source(t, "imap")
		if got := accessToken(t, s); got != "at-3" {
			t.Fatalf("got %s, want at-3 after two failures", got)
		}
		calls := e.srv.Calls()
		if len(calls) != 3 {
			t.Fatalf("calls = %+v, want 3", calls)
		}
		// Backoff 1s then 2s, each with jitter between half and all of it.
		d1, d2 := calls[1].At-calls[0].At, calls[2].At-calls[1].At
		if d1 < 500*time.Millisecond || d1 > time.Second || d2 < time.Second || d2 > 2*time.Second {
			t.Errorf("delays %v, %v; want in [0.5s,1s] and [1s,2s]", d1, d2)
		}
	})
}

func TestSourceTransientGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.fail = func(int) error { return context.DeadlineExceeded }
		s := e.source(t, "imap")
		if _, err := s.TokenContext(t.Context()); err == nil {
			t.Fatal("no error")
		}
		if n := len(e.srv.Calls()); n != 4 {
			t.Errorf("%d calls, want MaxAttempts = 4", n)
		}
		st, _ := LoadState(t.Context(), e.store, "work")
		if st.LastError == "" || st.ReloginRequired || !st.RetryAfter.After(time.Now()) {
			t.Errorf("state = %+v, want LastError and a RetryAfter in the future", st)
		}
		// Asking again at once, here or in another process: no new call.
		s.Token()
		other := e.source(t, "imap", func(c *Config) { c.Holder = "other" })
		if _, err := other.TokenContext(t.Context()); err == nil {
			t.Error("other process: no error during the cooldown")
		}
		if n := len(e.srv.Calls()); n != 4 {
			t.Errorf("%d calls after the cooldown started, want still 4", n)
		}
		// After the cooldown, a new attempt is made.
		time.Sleep(31 * time.Second)
		e.srv.mu.Lock()
		e.srv.fail = nil
		e.srv.mu.Unlock()
		if got := accessToken(t, s); got != "at-5" {
			t.Errorf("after the cooldown got %s, want at-5", got)
		}
	})
}

// 429: the next attempt waits exactly Retry-After.
func TestSourceRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.fail = func(n int) error {
			if n == 1 {
				return throttled(7 * time.Second)
			}
			return nil
		}
		s := e.source(t, "imap")
		accessToken(t, s)
		calls := e.srv.Calls()
		if len(calls) != 2 || calls[1].At-calls[0].At != 7*time.Second {
			t.Errorf("calls = %+v, want a second call exactly 7s after the first", calls)
		}
	})
}

// A refresh failing while the old token is still valid hands out the old
// token, without a new attempt per call.
func TestSourceFallsBackToValidToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(20*time.Minute))
		e.srv.fail = func(int) error { return serverError(500) }
		s := e.source(t, "imap", func(c *Config) { c.MaxAttempts = 1 })
		time.Sleep(16 * time.Minute) // due (5 minutes before expiry), still valid
		for range 5 {
			if got := accessToken(t, s); got != "at-0" {
				t.Fatalf("got %s, want the still-valid at-0", got)
			}
		}
		if n := len(e.srv.Calls()); n != 1 {
			t.Errorf("%d calls, want 1 (cooldown)", n)
		}
		time.Sleep(4 * time.Minute)
		if _, err := s.TokenContext(t.Context()); err == nil {
			t.Error("expired token handed out")
		}
	})
}

// One refresh token, several resources: each gets its own access token,
// refreshed with its own scopes, and the rotation chain stays intact.
func TestSourcePerResource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		imap := e.source(t, "imap")
		graph := e.source(t, "graph", func(c *Config) { c.Scopes = []string{"https://graph.microsoft.com/Mail.Send"} })
		if got := accessToken(t, imap); got != "at-1" {
			t.Fatalf("imap: %s", got)
		}
		if got := accessToken(t, graph); got != "at-2" {
			t.Fatalf("graph: %s", got)
		}
		if got := accessToken(t, imap); got != "at-1" {
			t.Fatalf("imap again: %s", got)
		}
		want := []call{
			{At: 0, RT: "rt-0", Scopes: "https://outlook.office.com/IMAP.AccessAsUser.All"},
			{At: 0, RT: "rt-1", Scopes: "https://graph.microsoft.com/Mail.Send"},
		}
		if diff := cmp.Diff(want, e.srv.Calls()); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
		recs, _ := e.store.Records(t.Context(), "work")
		var kinds []string
		for _, r := range recs {
			kinds = append(kinds, string(r.Kind))
		}
		if diff := cmp.Diff([]string{"access:graph", "access:imap", "refresh", "state"}, sorted(kinds)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
}

func TestSourceNotLoggedIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := Open(t.Context(), "mem:", nil)
		defer s.Close()
		src, err := NewSource(Config{Store: s, Refresher: newFakeServer(), Account: "new", Resource: "imap"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.TokenContext(t.Context())
		if !errors.Is(err, ErrReloginRequired) || !strings.Contains(err.Error(), "mailoauth login new") {
			t.Fatalf("got %v, want ErrReloginRequired naming the login command", err)
		}
	})
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		want  class
		after time.Duration
	}{
		{"invalid_grant", &fakeError{code: "invalid_grant", status: 400}, classRelogin, 0},
		{"wrapped invalid_grant", fmt.Errorf("x: %w", &fakeError{code: "invalid_grant"}), classRelogin, 0},
		{"interaction_required", &fakeError{code: "interaction_required", status: 400}, classRelogin, 0},
		{"invalid_client", &fakeError{code: "invalid_client", status: 401}, classFatal, 0},
		{"503", serverError(503), classTransient, 0},
		{"temporarily_unavailable", &fakeError{code: "temporarily_unavailable", status: 400}, classTransient, 0},
		{"429", throttled(5 * time.Second), classThrottled, 5 * time.Second},
		{"deadline", context.DeadlineExceeded, classTransient, 0},
		{"x/oauth2 invalid_grant", &oauth2.RetrieveError{ErrorCode: "invalid_grant"}, classRelogin, 0},
		{"plain", errors.New("boom"), classFatal, 0},
		{"oauth invalid_grant", &oauth.Error{Code: "invalid_grant", HTTPStatus: 400}, classRelogin, 0},
		{"oauth MFA newly required", &oauth.Error{Code: "invalid_request", AADSTS: []int{50076}, HTTPStatus: 400}, classRelogin, 0},
		{"oauth consent_required", &oauth.Error{Code: "invalid_grant", SubError: "consent_required", HTTPStatus: 400}, classRelogin, 0},
		{"oauth 503", &oauth.Error{HTTPStatus: 503}, classTransient, 0},
		{"oauth 429", fmt.Errorf("refresh: %w", &oauth.Error{HTTPStatus: 429, RetryAfter: 9 * time.Second}), classThrottled, 9 * time.Second},
		{"oauth invalid_client", &oauth.Error{Code: "invalid_client", HTTPStatus: 401}, classFatal, 0},
		{"oauth no refresh token", fmt.Errorf("refresh: no refresh token: %w", oauth.ErrReloginRequired), classRelogin, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, after := classify(tt.err)
			if got != tt.want || after != tt.after {
				t.Errorf("classify = %v, %v; want %v, %v", got, after, tt.want, tt.after)
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// The cached path allocates nothing (the benchmark reports the same).
func TestSourceCachedPathAllocs(t *testing.T) {
	e := newEnv(t, time.Now().Add(time.Hour))
	s := e.source(t, "imap")
	if _, err := s.Token(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { s.Token() }); n != 0 {
		t.Errorf("Token: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.TokenContext(t.Context()) }); n != 0 {
		t.Errorf("TokenContext: %v allocations per call, want 0", n)
	}
	if s.NextRefresh().IsZero() {
		t.Error("NextRefresh is zero with a cached token")
	}
}

// A login made elsewhere during the cooldown is picked up without waiting.
func TestSourceSeesLoginDuringCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		e.srv.latestRT = "rt-revoked"
		s := e.source(t, "imap")
		if _, err := s.TokenContext(t.Context()); !errors.Is(err, ErrReloginRequired) {
			t.Fatalf("got %v", err)
		}
		if err := SaveLogin(t.Context(), e.store, "work", "imap", loginToken("rt-new", "at-login", time.Now().Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		if got := accessToken(t, s); got != "at-login" {
			t.Errorf("got %s, want the new login's at-login", got)
		}
	})
}

func TestInspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		accessToken(t, e.source(t, "graph"))
		info, err := Inspect(t.Context(), e.store, "work")
		if err != nil {
			t.Fatal(err)
		}
		want := AccountInfo{
			Account: "work", State: State{LastRefresh: time.Now()}, HasRefreshToken: true,
			Scope:  []string{"offline_access"},
			Access: map[string]time.Time{"imap": time.Now().Add(-time.Minute), "graph": time.Now().Add(time.Hour)},
			// Stored now: imap expired before it was stored, so it is due at
			// its expiry; graph 5 minutes before.
			RefreshDue: map[string]time.Time{"imap": time.Now().Add(-time.Minute), "graph": time.Now().Add(55 * time.Minute)},
		}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// A refresh whose lease is taken over before it stores its result hands
// nothing out and leaves the store as the new holder sees it.
func TestSourceLeaseLostMidRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		thief := RefresherFunc(func(ctx context.Context, rt string, scopes []string) (*oauth.Token, error) {
			// Our lease expires during a very slow answer; another process takes over.
			time.Sleep(2 * time.Minute)
			if _, err := e.store.Acquire(ctx, "work", "other-process", time.Hour); err != nil {
				t.Errorf("the lease did not expire: %v", err)
			}
			return &oauth.Token{AccessToken: "at-late", RefreshToken: "rt-late", Expiry: time.Now().Add(time.Hour)}, nil
		})
		s := e.source(t, "imap", func(c *Config) { c.Refresher = thief; c.AttemptTimeout = 5 * time.Minute; c.LeaseTTL = time.Minute })
		_, err := s.TokenContext(t.Context())
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("got %v, want ErrLeaseLost", err)
		}
		if rt, _ := LoadToken(t.Context(), e.store, "work", KindRefresh); rt.RefreshToken != "rt-0" {
			t.Errorf("store holds %s; the late result must not overwrite the new holder's", rt.RefreshToken)
		}
	})
}

// Client credentials: no refresh token; the Refresher is called with none.
func TestSourceNoRefreshToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := Open(t.Context(), "mem:", nil)
		defer s.Close()
		var got []string
		app := RefresherFunc(func(ctx context.Context, rt string, scopes []string) (*oauth.Token, error) {
			got = append(got, rt)
			return &oauth.Token{AccessToken: "app-token", Expiry: time.Now().Add(time.Hour)}, nil
		})
		src, err := NewSource(Config{Store: s, Refresher: app, Account: "daemon", Resource: "graph", NoRefreshToken: true})
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := src.TokenContext(t.Context()); err != nil || tok.AccessToken != "app-token" {
			t.Fatalf("got %v, %v", tok, err)
		}
		if diff := cmp.Diff([]string{""}, got); diff != "" {
			t.Errorf("refresh tokens passed (-want +got):\n%s", diff)
		}
		if _, err := s.Get(t.Context(), "daemon", KindRefresh); !errors.Is(err, ErrNotFound) {
			t.Errorf("a refresh record was written: %v", err)
		}
	})
}

// Two resources of one account refreshing at the same moment in one
// process take turns, so the second uses the first's rotated refresh token
// (a server with strict rotation would otherwise refuse the second).
func TestSourceResourcesTakeTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, time.Now().Add(-time.Minute))
		if err := e.store.Put(t.Context(), nil, TokenRecord("work", AccessKind("graph"), loginToken("", "g-0", time.Now().Add(-time.Minute)))); err != nil {
			t.Fatal(err)
		}
		e.srv.delay = time.Second
		imap := e.source(t, "imap", func(c *Config) { c.Holder = "daemon" })
		graph := e.source(t, "graph", func(c *Config) { c.Holder = "daemon" })
		var wg sync.WaitGroup
		for _, s := range []*Source{imap, graph} {
			wg.Go(func() {
				if _, err := s.TokenContext(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var rts []string
		for _, c := range e.srv.Calls() {
			rts = append(rts, c.RT)
		}
		if diff := cmp.Diff([]string{"rt-0", "rt-1"}, rts); diff != "" {
			t.Errorf("refresh tokens used (-want +got):\n%s", diff)
		}
	})
}

func TestRefreshDue(t *testing.T) {
	issued := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		expiresIn time.Duration
		refreshIn time.Duration // 0: no hint
		want      time.Duration // after issued; -1: zero time
	}{
		{"margin", time.Hour, 0, 55 * time.Minute},
		{"refresh_in hint", time.Hour, 30 * time.Minute, 30 * time.Minute},
		{"hint after expiry ignored", time.Hour, 2 * time.Hour, 55 * time.Minute},
		{"short-lived: half its life", 6 * time.Minute, 0, 3 * time.Minute},
		{"expired on arrival: at once", -time.Minute, 0, -time.Minute},
		{"no expiry", 0, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &oauth.Token{AccessToken: "at"}
			if tt.expiresIn != 0 {
				tok.Expiry = issued.Add(tt.expiresIn)
			}
			if tt.refreshIn != 0 {
				tok.RefreshAt = issued.Add(tt.refreshIn)
			}
			want := time.Time{}
			if tt.want != -1 {
				want = issued.Add(tt.want)
			}
			if diff := cmp.Diff(want, RefreshDue(tok, issued)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
