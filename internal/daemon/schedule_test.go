package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// srcAccounts serves accounts straight from tokens.Sources over one store:
// the refresh engine without the account package, so the schedule can run
// inside a synctest bubble with an in-memory token endpoint.
type srcAccounts struct {
	store  tokens.Store
	names  []string
	server *memEndpoint
	notify func(tokens.Event)
	log    *slog.Logger

	mu   sync.Mutex
	srcs map[jobKey]*tokens.Source
}

func (s *srcAccounts) source(account, resource string) (*tokens.Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := jobKey{account, resource}
	if src, ok := s.srcs[k]; ok {
		return src, nil
	}
	src, err := tokens.NewSource(tokens.Config{
		Store: s.store, Account: account, Resource: resource, Jitter: -1, Notify: s.notify, Logger: s.log,
		Refresher: tokens.RefresherFunc(func(ctx context.Context, rt string, _ []string) (*oauth.Token, error) {
			return s.server.refresh(account, rt)
		}),
	})
	if err != nil {
		return nil, err
	}
	s.srcs[k] = src
	return src, nil
}

func (s *srcAccounts) Names() []string { return s.names }

func (s *srcAccounts) Resources(ctx context.Context, account string) ([]string, error) {
	info, err := tokens.Inspect(ctx, s.store, account)
	if err != nil {
		return nil, err
	}
	var out []string
	for r := range info.Access {
		out = append(out, r)
	}
	slices.Sort(out)
	return out, nil
}

func (s *srcAccounts) Token(ctx context.Context, account, resource string) (*oauth.Token, time.Time, error) {
	if !slices.Contains(s.names, account) {
		return nil, time.Time{}, fmt.Errorf("%w: %s", config.ErrNoAccount, account)
	}
	src, err := s.source(account, resource)
	if err != nil {
		return nil, time.Time{}, err
	}
	tok, err := src.TokenContext(ctx)
	return tok, src.NextRefresh(), err
}

func (s *srcAccounts) User(string) string { return "" }

func (s *srcAccounts) Status(ctx context.Context, account string) (any, error) {
	return tokens.Inspect(ctx, s.store, account)
}

// memEndpoint is a token endpoint in memory that records when each account
// refreshed (as offsets from the bubble's start) and can refuse an
// account's refresh token.
type memEndpoint struct {
	start time.Time

	mu     sync.Mutex
	n      int
	calls  []string
	refuse map[string]bool
}

type grantError struct{}

func (grantError) Error() string     { return "invalid_grant: refresh token revoked" }
func (grantError) OAuthCode() string { return "invalid_grant" }

func (m *memEndpoint) refresh(account, rt string) (*oauth.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	m.calls = append(m.calls, fmt.Sprintf("%s %v", account, time.Since(m.start)))
	if m.refuse[account] {
		return nil, grantError{}
	}
	return &oauth.Token{AccessToken: fmt.Sprintf("at-%d", m.n), TokenType: "Bearer", RefreshToken: fmt.Sprintf("rt-%d", m.n),
		Expiry: time.Now().Add(time.Hour)}, nil
}

func (m *memEndpoint) setRefuse(account string, v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refuse[account] = v
}

func (m *memEndpoint) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// TestSchedule drives the daemon's schedule through three and a half
// hours of fake time: each token is refreshed at expiry minus 5 minutes
// and not before, a login made later is picked up at the next rescan, a
// refused refresh token stops the calls until a new login, and a logout
// ends the account's schedule.
func TestSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		store, err := tokens.Open(ctx, "mem:", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		login := func(account string, exp time.Duration) {
			t.Helper()
			tok := &oauth.Token{AccessToken: "login-" + account, RefreshToken: "rt-login", Expiry: time.Now().Add(exp)}
			if err := tokens.SaveLogin(ctx, store, account, "mail", tok); err != nil {
				t.Fatal(err)
			}
		}
		d, err := New(Options{Socket: "/nonexistent/d.sock", Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		srv := &memEndpoint{start: start, refuse: map[string]bool{}}
		acc := &srcAccounts{store: store, names: []string{"other", "work"}, server: srv, notify: d.Notify, log: d.log, srcs: map[jobKey]*tokens.Source{}}
		d.sched.acc = acc
		login("work", time.Hour)

		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.sched.run(runCtx, runCtx)
		}()
		at := func(offset time.Duration) {
			time.Sleep(start.Add(offset).Sub(time.Now()))
			synctest.Wait()
		}

		at(20*time.Minute + 30*time.Second)
		if got := srv.Calls(); len(got) != 0 {
			t.Fatalf("calls before any token was due: %v", got)
		}
		login("other", time.Hour) // expires at 1h20m30s
		at(21*time.Minute + time.Second)
		if got := jobNames(d); !cmp.Equal(got, []string{"other/mail", "work/mail"}) {
			t.Errorf("jobs after the rescan: %v", got)
		}

		at(2 * time.Hour)
		srv.setRefuse("other", true) // other's next refresh, at 2h10m30s, is refused
		if err := store.Delete(ctx, "work"); err != nil {
			t.Fatal(err) // logout: work's 2h45m refresh must not happen
		}
		at(2*time.Hour + 20*time.Minute)
		st := jobStatus(d, "other")
		if !st.ReloginRequired || !strings.Contains(st.LastError, "mailoauth login other") {
			t.Errorf("other after the refusal: %+v", st)
		}
		if got := jobNames(d); !cmp.Equal(got, []string{"other/mail"}) {
			t.Errorf("jobs after work's logout: %v", got)
		}

		// A new login: the schedule resumes from its token without a call.
		srv.setRefuse("other", false)
		login("other", time.Hour) // at 2h20m; due at 3h15m
		at(3*time.Hour + 30*time.Minute)
		cancel()
		<-done

		want := []string{
			"work 55m0s",
			"other 1h15m30s",
			"work 1h50m0s",
			"other 2h10m30s", // refused: no retry storm after it
			"other 3h15m0s",
		}
		if diff := cmp.Diff(want, srv.Calls()); diff != "" {
			t.Errorf("token endpoint calls (-want +got)\n%s", diff)
		}
		scrape := scrapeMetrics(t, d)
		for _, line := range []string{
			`mailoauth_refresh_total{account="other",resource="mail"} 2`,
			`mailoauth_refresh_total{account="work",resource="mail"} 2`,
			`mailoauth_refresh_errors_total{account="other",kind="relogin",resource="mail"} 1`,
			`mailoauth_refresh_duration_seconds_count{account="other",resource="mail"} 2`,
		} {
			if !strings.Contains(scrape, line+"\n") {
				t.Errorf("metrics lack %s\n%s", line, scrape)
			}
		}
	})
}

// TestScheduleRetries: a failing token endpoint (5xx) is retried with the
// scheduler's backoff on top of the engine's own retries and cool-down,
// and the schedule is back to normal after one success.
func TestScheduleRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		store, err := tokens.Open(ctx, "mem:", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		tok := &oauth.Token{AccessToken: "old", RefreshToken: "rt", Expiry: time.Now().Add(10 * time.Minute)}
		if err := tokens.SaveLogin(ctx, store, "work", "mail", tok); err != nil {
			t.Fatal(err)
		}
		d, _ := New(Options{Socket: "/nonexistent/d.sock", Logger: testLogger(t), RetryMin: time.Minute, RetryMax: 4 * time.Minute})
		var (
			mu    sync.Mutex
			calls []time.Duration
		)
		fails := 6
		ep := &memEndpoint{start: start, refuse: map[string]bool{}}
		acc := &srcAccounts{store: store, names: []string{"work"}, server: ep, notify: d.Notify, log: d.log, srcs: map[jobKey]*tokens.Source{}}
		// One attempt per refresh and no engine backoff, so the calls
		// show the scheduler's own spacing.
		src, _ := tokens.NewSource(tokens.Config{Store: store, Account: "work", Resource: "mail", Jitter: -1, MaxAttempts: 1,
			Cooldown: time.Second, Notify: d.Notify, Logger: d.log,
			Refresher: tokens.RefresherFunc(func(ctx context.Context, rt string, _ []string) (*oauth.Token, error) {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, time.Since(start))
				if len(calls) <= fails {
					return nil, &statusError{503}
				}
				return &oauth.Token{AccessToken: "new", RefreshToken: "rt2", Expiry: time.Now().Add(time.Hour)}, nil
			})})
		acc.srcs[jobKey{"work", "mail"}] = src
		d.sched.acc = acc
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.sched.run(runCtx, runCtx)
		}()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		cancel()
		<-done
		// Due at 5m (half of a 10-minute life); then 1m, 2m, 4m, 4m… apart
		// while failing (the old token still valid until 10m, then
		// errors); the success at 20m lasts an hour: next at 1h15m.
		want := []time.Duration{5 * time.Minute, 6 * time.Minute, 8 * time.Minute, 12 * time.Minute, 16 * time.Minute, 20 * time.Minute, 24 * time.Minute, 79 * time.Minute}
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("refresh calls (-want +got)\n%s", diff)
		}
	})
}

type statusError struct{ status int }

func (e *statusError) Error() string       { return fmt.Sprintf("HTTP %d", e.status) }
func (e *statusError) HTTPStatusCode() int { return e.status }

func jobNames(d *Daemon) []string {
	var out []string
	for _, j := range d.sched.statuses() {
		out = append(out, j.Account+"/"+j.Resource)
	}
	return out
}

func jobStatus(d *Daemon, account string) JobStatus {
	for _, j := range d.sched.statuses() {
		if j.Account == account {
			return j
		}
	}
	return JobStatus{}
}

// scrapeMetrics renders the daemon's registry as Prometheus text, in
// process (the HTTP listener is tested in TestMetricsAndHooks).
func scrapeMetrics(t *testing.T, d *Daemon) string {
	t.Helper()
	rec := httptest.NewRecorder()
	d.metricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics: HTTP %d", rec.Code)
	}
	return rec.Body.String()
}
