package daemon

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/tokens"
)

// jobKey names one schedule: an account and one of its resources.
type jobKey struct{ Account, Resource string }

// job keeps one account's resource fresh: it asks the refresh engine for the
// token, sleeps until the engine says it is due, and asks again (which
// refreshes it). Its facts are read by /v1/status and the metrics.
type job struct {
	key    jobKey
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	expiry   time.Time
	next     time.Time
	lastErr  string
	relogin  bool
	failures int
}

// JobStatus is what the daemon knows about one schedule, without a token.
type JobStatus struct {
	Account  string    `json:"account"`
	Resource string    `json:"resource"`
	Expiry   time.Time `json:"expiry,omitzero"`
	// NextRefresh is when the daemon next asks the refresh engine.
	NextRefresh time.Time `json:"next_refresh,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// ReloginRequired: the daemon waits for `mailoauth login ACCOUNT`.
	ReloginRequired bool `json:"relogin_required,omitempty"`
}

func (j *job) status() JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return JobStatus{Account: j.key.Account, Resource: j.key.Resource, Expiry: j.expiry, NextRefresh: j.next,
		LastError: j.lastErr, ReloginRequired: j.relogin}
}

// scheduler runs one job per (account, resource) with a cached token and
// rescans the store for logins and logouts. All its waiting is on timers
// and channels, so testing/synctest drives it without real sleeps.
type scheduler struct {
	d   *Daemon
	acc Accounts
	log *slog.Logger

	kickc chan struct{}
	stopc chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex
	jobs    map[jobKey]*job
	scanned bool // the first scan is done: later finds are new logins
}

func newScheduler(d *Daemon) *scheduler {
	return &scheduler{d: d, log: d.log, kickc: make(chan struct{}, 1), stopc: make(chan struct{}), jobs: map[jobKey]*job{}}
}

// kick asks for a rescan now; it never blocks.
func (s *scheduler) kick() {
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// stop tells every job to finish its current call and return.
func (s *scheduler) stop() { s.once.Do(func() { close(s.stopc) }) }

// statuses lists every job, sorted.
func (s *scheduler) statuses() []JobStatus {
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	out := make([]JobStatus, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.status())
	}
	slices.SortFunc(out, func(a, b JobStatus) int {
		if a.Account != b.Account {
			return cmp.Compare(a.Account, b.Account)
		}
		return cmp.Compare(a.Resource, b.Resource)
	})
	return out
}

// run scans until ctx ends or stop is called, then waits for the jobs. Jobs
// make their calls with hard, which outlives ctx by the shutdown bound.
func (s *scheduler) run(ctx, hard context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	defer s.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return
		case <-s.stopc:
			return
		case <-t.C:
		case <-s.kickc:
			t.Stop()
		}
		s.scan(ctx, hard)
		t.Reset(s.d.opts.Rescan)
	}
}

// scan starts a job for every resource with a cached token that has none,
// and ends the jobs of accounts that no longer have that token (logout).
func (s *scheduler) scan(ctx, hard context.Context) {
	want := map[jobKey]bool{}
	for _, name := range s.acc.Names() {
		res, err := s.acc.Resources(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("cannot read the account's tokens", "account", name, "err", err)
			continue
		}
		for _, r := range res {
			want[jobKey{name, r}] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, j := range s.jobs {
		if !want[k] {
			s.log.Info("account logged out; no longer refreshing", "account", k.Account, "resource", k.Resource)
			j.cancel()
			delete(s.jobs, k)
			s.d.hooks.run(hookEvent{Event: "removed", Account: k.Account, Resource: k.Resource})
		}
	}
	for k := range want {
		if _, ok := s.jobs[k]; ok {
			continue
		}
		jctx, cancel := context.WithCancel(hard)
		j := &job{key: k, cancel: cancel, done: make(chan struct{})}
		s.jobs[k] = j
		if s.scanned {
			s.log.Info("new login found", "account", k.Account, "resource", k.Resource)
			s.d.hooks.run(hookEvent{Event: "new", Account: k.Account, Resource: k.Resource})
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(j.done)
			s.loop(jctx, j)
		}()
	}
	s.scanned = true
}

// loop is one job: ask, sleep until due (or a backoff after a failure),
// ask again. It returns when stopped or cancelled, never in the middle of a
// call unless its context ends (the shutdown bound passed).
func (s *scheduler) loop(ctx context.Context, j *job) {
	k := j.key
	for {
		start := time.Now()
		tok, next, err := s.acc.Token(ctx, k.Account, k.Resource)
		now := time.Now()
		var wait time.Duration
		j.mu.Lock()
		switch {
		case err == nil:
			// A new token after a healthy wait is a scheduled refresh
			// (not the first look, nor a login found after a failure).
			if !j.expiry.IsZero() && !tok.Expiry.Equal(j.expiry) && j.failures == 0 && !j.relogin {
				s.d.metrics.refreshed(k, now.Sub(start))
			}
			j.expiry, j.lastErr, j.relogin = tok.Expiry, "", false
			if next.IsZero() {
				// No expiry: nothing to refresh; look again at the next
				// relogin poll (a new login may bring one).
				wait = s.d.opts.ReloginPoll
				break
			}
			wait = next.Sub(now)
			if wait <= 0 {
				// Due already, yet the engine handed out a still-valid
				// token: its refresh failed and it is cooling down.
				j.failures++
				wait = s.backoff(j.failures)
			} else {
				j.failures = 0
			}
		case ctx.Err() != nil:
			j.mu.Unlock()
			return
		case errors.Is(err, tokens.ErrReloginRequired):
			j.lastErr, j.relogin = err.Error(), true
			wait = s.d.opts.ReloginPoll
		default:
			j.lastErr, j.relogin = err.Error(), false
			j.failures++
			wait = s.backoff(j.failures)
		}
		j.next = now.Add(wait)
		j.mu.Unlock()
		if err != nil {
			s.log.Debug("scheduled token request failed", "account", k.Account, "resource", k.Resource, "err", err, "retry_in", wait)
		} else {
			s.log.Debug("token fresh", "account", k.Account, "resource", k.Resource, "expiry", tok.Expiry, "next_refresh", j.next)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.stopc:
			t.Stop()
			return
		}
	}
}

// backoff is the wait after the nth failure in a row: RetryMin doubling,
// capped at RetryMax. The engine's own cool-down and the server's
// Retry-After keep the token endpoint safe whatever this says.
func (s *scheduler) backoff(n int) time.Duration {
	d := s.d.opts.RetryMin
	for i := 1; i < n && d < s.d.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.d.opts.RetryMax)
}
