package tokens

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailoauth/mailoauth/oauth"
)

// Config describes one Source: which account's tokens, for which resource,
// refreshed how. Only Store, Refresher, Account and Resource are required;
// the zero value of every other field picks the documented default.
type Config struct {
	Store     Store
	Refresher Refresher
	Account   string
	// Resource names the access token this Source hands out ("imap",
	// "smtp", "graph"…); each resource has its own cached access token,
	// all refreshed from the account's one refresh token.
	Resource string
	// Scopes are sent with every refresh for this resource.
	Scopes []string
	// NoRefreshToken is for flows without refresh tokens (client
	// credentials): the Refresher is called with an empty refresh token
	// instead of failing with ErrReloginRequired.
	NoRefreshToken bool

	// Margin: refresh this long before Expiry when the server gave no
	// refresh_in hint. Default 5 minutes.
	Margin time.Duration
	// Jitter: the refresh time is moved earlier by a random amount up to
	// this, so many processes and accounts do not refresh in step.
	// Default 30 seconds; negative means none.
	Jitter time.Duration
	// MaxAttempts bounds the calls per refresh when the token endpoint
	// fails transiently (5xx, timeout, 429). Default 4.
	MaxAttempts int
	// Backoff is the first retry's delay; it doubles per attempt with full
	// jitter, up to MaxBackoff. Defaults 1 second and 30 seconds.
	Backoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one token-endpoint call. Default 30 seconds.
	AttemptTimeout time.Duration
	// Cooldown: after a refresh finally fails, no process tries again for
	// this long (or the server's Retry-After, if longer). Default 30 seconds.
	Cooldown time.Duration
	// LeaseTTL is how long the cross-process refresh lease lasts before
	// others may take it over; it is renewed before every attempt and must
	// exceed AttemptTimeout. Default 2×AttemptTimeout.
	LeaseTTL time.Duration
	// Holder names this process in leases (the resource is appended, so
	// Sources of one process for different resources of an account still
	// refresh one after the other). Default: the process id and a random
	// string. A stable name lets a restarted process (a daemon under
	// systemd) take its own lease back at once instead of waiting for it to
	// expire; two live processes must never share one.
	Holder string
	// Logger receives refresh events (never a token); nil: slog.Default.
	Logger *slog.Logger
	// Notify, when set, is called after each refresh outcome, e.g. to run
	// the daemon's hooks or update metrics. It must not block for long.
	Notify func(Event)
}

// Event reports a refresh outcome to Config.Notify.
type Event struct {
	Account, Resource string
	// Type is EventRefreshed, EventError or EventRelogin.
	Type   string
	Expiry time.Time // of the new access token, for EventRefreshed
	Err    error     // for EventError and EventRelogin
}

// Event types.
const (
	EventRefreshed = "refreshed"
	EventError     = "error"
	EventRelogin   = "relogin"
)

// DefaultMargin is Config.Margin's default: without a refresh_in hint, a
// token is refreshed this long before it expires.
const DefaultMargin = 5 * time.Minute

// expiryDelta: a token is not handed out in its last seconds, so it does not
// expire in flight (golang.org/x/oauth2 uses the same 10 seconds).
const expiryDelta = 10 * time.Second

// Source hands out access tokens for one account and resource, refreshing
// them ahead of expiry. It satisfies golang.org/x/oauth2.TokenSource.
//
// The cached path is one atomic load and a clock read: no lock, no
// allocation. When a refresh is due, exactly one goroutine of the process
// does it (the others wait for its result), and across processes sharing the
// Store the lease lets exactly one call the token endpoint while the others
// wait for the token it stores. A rotated refresh token is stored, in the
// same transaction as the access token, before the access token is handed
// out. A refresh token the server refuses (invalid_grant) marks the account
// "re-login needed" in the store, and every process then fails fast with
// ErrReloginRequired instead of calling the server again.
type Source struct {
	cfg    Config
	kind   Kind
	log    *slog.Logger
	cur    atomic.Pointer[cached]
	mu     sync.Mutex
	flight *flight   // the refresh in progress, if any
	cool   time.Time // no new refresh before this, after a failure
	err    error     // that failure
}

// cached is an access token ready to hand out: both forms are built once so
// the cached path allocates nothing.
type cached struct {
	tok       *oauth.Token
	o2        *oauth2.Token
	refreshAt time.Time // refresh from here on (jittered)
	expiry    time.Time // never hand out from here on
}

type flight struct {
	done chan struct{}
	c    *cached
	err  error
}

// NewSource checks cfg and fills in defaults. It does no I/O: the first
// Token call loads the stored token.
func NewSource(cfg Config) (*Source, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("tokens: Config.Store is nil")
	case cfg.Refresher == nil:
		return nil, errors.New("tokens: Config.Refresher is nil")
	case cfg.Account == "" || cfg.Resource == "":
		return nil, errors.New("tokens: Config needs an Account and a Resource")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Margin, DefaultMargin)
	def(&cfg.Jitter, 30*time.Second)
	def(&cfg.Backoff, time.Second)
	def(&cfg.MaxBackoff, 30*time.Second)
	def(&cfg.AttemptTimeout, 30*time.Second)
	def(&cfg.Cooldown, 30*time.Second)
	def(&cfg.LeaseTTL, 2*cfg.AttemptTimeout)
	if cfg.Jitter < 0 {
		cfg.Jitter = 0
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.Holder == "" {
		cfg.Holder = strconv.Itoa(os.Getpid()) + "-" + crand.Text()
	}
	cfg.Holder += "/" + cfg.Resource
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("account", cfg.Account, "resource", cfg.Resource)
	return &Source{cfg: cfg, kind: AccessKind(cfg.Resource), log: log}, nil
}

var _ oauth2.TokenSource = (*Source)(nil)

// NextRefresh is when the token this Source holds is due for refresh (zero
// before the first Token call), so a daemon can sleep until then instead of
// polling.
func (s *Source) NextRefresh() time.Time {
	if c := s.cur.Load(); c != nil {
		return c.refreshAt
	}
	return time.Time{}
}

// Token returns a valid access token, refreshing it if due. It satisfies
// oauth2.TokenSource; the returned token is shared and must not be modified
// (as with oauth2.ReuseTokenSource).
func (s *Source) Token() (*oauth2.Token, error) {
	if c := s.cur.Load(); c != nil && time.Now().Before(c.refreshAt) {
		return c.o2, nil
	}
	c, err := s.slow(context.Background())
	if err != nil {
		return nil, err
	}
	return c.o2, nil
}

// TokenContext is Token with a context, returning the full token record
// (expiry, scopes). ctx bounds only this caller's wait: a refresh that others
// wait for too runs to its end. The token is shared and must not be modified.
func (s *Source) TokenContext(ctx context.Context) (*oauth.Token, error) {
	if c := s.cur.Load(); c != nil && time.Now().Before(c.refreshAt) {
		return c.tok, nil
	}
	c, err := s.slow(ctx)
	if err != nil {
		return nil, err
	}
	return c.tok, nil
}

// slow is the path when no cached token is fresh: join or start the single
// in-process refresh, and fall back to the current token while it is still
// valid if the refresh fails.
func (s *Source) slow(ctx context.Context) (*cached, error) {
	s.mu.Lock()
	c := s.cur.Load()
	now := time.Now()
	if c != nil && now.Before(c.refreshAt) {
		s.mu.Unlock()
		return c, nil
	}
	if now.Before(s.cool) {
		err := s.err
		s.mu.Unlock()
		if c != nil && now.Before(c.expiry) {
			return c, nil
		}
		// No server call in the cooldown, but another process (the daemon,
		// a new login) may have stored a fresh token meanwhile.
		if fresh, ok, lerr := s.loadStored(ctx); lerr == nil && ok {
			s.cur.Store(fresh)
			return fresh, nil
		}
		return nil, err
	}
	f := s.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		s.flight = f
		// Detached from the caller: waiters must not all fail because the
		// first caller gave up, and a refresh cut in the middle could lose a
		// rotated refresh token. It is bounded by the attempts' own timeouts.
		go s.run(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		if c != nil && time.Now().Before(c.expiry) {
			return c, nil
		}
		return nil, fmt.Errorf("token for %s: %w", s.cfg.Account, ctx.Err())
	}
	if f.err != nil {
		// A failed refresh still hands out a token that has not expired:
		// the one it found in the store, or the one this process had.
		now := time.Now()
		if f.c != nil && now.Before(f.c.expiry) {
			return f.c, nil
		}
		if c != nil && now.Before(c.expiry) {
			return c, nil
		}
		return nil, f.err
	}
	return f.c, nil
}

func (s *Source) run(ctx context.Context, f *flight) {
	// An upper bound on the whole refresh, so a hung database cannot hold
	// the waiters forever: every attempt with its backoff, plus one lease
	// lifetime of waiting for another holder.
	limit := time.Duration(s.cfg.MaxAttempts)*(s.cfg.AttemptTimeout+s.cfg.MaxBackoff) + s.cfg.LeaseTTL
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := s.refresh(ctx)
	s.mu.Lock()
	if c != nil {
		s.cur.Store(c)
	}
	if err == nil {
		s.cool, s.err = time.Time{}, nil
	} else {
		// Callers in the cooldown get this error (or the still-valid old
		// token) without a new attempt: no retry storm. After it, the store's
		// state decides (a login in between clears "re-login needed").
		s.err = err
		s.cool = time.Now().Add(s.cfg.Cooldown)
	}
	s.flight = nil
	f.c, f.err = c, err
	s.mu.Unlock()
	close(f.done)
}

// newCached prepares tok, received at issued, for handing out and decides
// when to refresh it: at the server's refresh_in hint, else Margin before
// expiry, earlier by a random jitter. A token living less than twice Margin
// is refreshed at half its life instead. The times derive from issued, not
// from now, so re-reading a stored token gives the same answer.
func (s *Source) newCached(tok *oauth.Token, issued time.Time) *cached {
	c := &cached{tok: tok, o2: tok.OAuth2()}
	if tok.Expiry.IsZero() { // no expires_in: valid until the server says otherwise
		c.refreshAt = issued.Add(100 * 365 * 24 * time.Hour)
		c.expiry = c.refreshAt
		return c
	}
	c.expiry = tok.Expiry.Add(-expiryDelta)
	at := dueAt(tok, issued, s.cfg.Margin)
	if j := min(s.cfg.Jitter, tok.Expiry.Sub(issued)/10); j > 0 {
		at = at.Add(-rand.N(j))
	}
	c.refreshAt = at
	return c
}

// dueAt is when tok, received at issued, is due for refresh before jitter:
// the server's refresh_in hint, else margin before expiry, or half its life
// for a token living less than twice margin.
func dueAt(tok *oauth.Token, issued time.Time, margin time.Duration) time.Time {
	if at := tok.RefreshAt; !at.IsZero() && at.Before(tok.Expiry) {
		return at
	}
	if life := tok.Expiry.Sub(issued); life < 2*margin {
		margin = max(life/2, 0) // a token expired on arrival is due at once
	}
	return tok.Expiry.Add(-margin)
}

// RefreshDue is when a Source with the default margin refreshes tok,
// received at issued, before its jitter (which only moves it earlier): for
// `mailoauth status` and a daemon's schedule. Zero for a token without an
// expiry.
func RefreshDue(tok *oauth.Token, issued time.Time) time.Time {
	if tok.Expiry.IsZero() {
		return time.Time{}
	}
	return dueAt(tok, issued, DefaultMargin)
}

// loadStored returns the stored access token for this resource, if any,
// and whether it is fresh (not yet due; another process may just have
// refreshed it). A due token is still returned: it may be handed out until
// it expires if the refresh fails.
func (s *Source) loadStored(ctx context.Context) (*cached, bool, error) {
	rec, err := s.cfg.Store.Get(ctx, s.cfg.Account, s.kind)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	tok, err := decodeToken(rec)
	if err != nil {
		return nil, false, err
	}
	// The record was written right after the token was received.
	c := s.newCached(tok, rec.Updated)
	return c, time.Now().Before(c.refreshAt), nil
}

// refresh gets a fresh token for the process: from the store if another
// process refreshed it, else by taking the account's lease and calling the
// token endpoint. While another holder has the lease it polls the store.
// With an error it may also return the stored token, due but still valid.
func (s *Source) refresh(ctx context.Context) (*cached, error) {
	c, err := s.refresh1(ctx)
	if err != nil {
		if stale, _, lerr := s.loadStored(ctx); lerr == nil && stale != nil && time.Now().Before(stale.expiry) {
			return stale, err
		}
	}
	return c, err
}

func (s *Source) refresh1(ctx context.Context) (*cached, error) {
	acct := s.cfg.Account
	wait := 10 * time.Millisecond
	for {
		if c, fresh, err := s.loadStored(ctx); fresh || err != nil {
			return c, err
		}
		st, err := LoadState(ctx, s.cfg.Store, acct)
		if err != nil {
			return nil, err
		}
		if err := st.Relogin(acct); err != nil {
			return nil, err
		}
		if now := time.Now(); now.Before(st.RetryAfter) {
			return nil, fmt.Errorf("refresh %s: waiting until %s (in %s) before asking the token endpoint again; last error: %s",
				acct, st.RetryAfter.Local().Format(time.TimeOnly), st.RetryAfter.Sub(now).Round(time.Second), st.LastError)
		}
		lease, err := s.cfg.Store.Acquire(ctx, acct, s.cfg.Holder, s.cfg.LeaseTTL)
		if errors.Is(err, ErrLeaseHeld) {
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
			wait = min(2*wait, 250*time.Millisecond)
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := s.refreshLeased(ctx, lease)
		// Release even when ctx has ended, so waiters need not sit out the TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		rerr := s.cfg.Store.Release(rctx, lease)
		cancel()
		if rerr != nil {
			s.log.Warn("cannot release the refresh lease; it expires by itself", "err", rerr)
		}
		return c, err
	}
}

// refreshLeased calls the token endpoint while holding the lease, retrying
// transient failures, and stores the outcome.
func (s *Source) refreshLeased(ctx context.Context, lease *Lease) (*cached, error) {
	acct := s.cfg.Account
	// Someone may have finished a refresh between our look and our lease.
	if c, fresh, err := s.loadStored(ctx); fresh || err != nil {
		return c, err
	}
	var (
		stored *oauth.Token
		rt     string
	)
	stored, err := LoadToken(ctx, s.cfg.Store, acct, KindRefresh)
	switch {
	case err == nil:
		rt = stored.RefreshToken
	case errors.Is(err, ErrNotFound) && s.cfg.NoRefreshToken:
		stored = &oauth.Token{}
	case errors.Is(err, ErrNotFound):
		return nil, &ReloginError{Account: acct, Reason: "no refresh token stored", Command: LoginCommand(acct)}
	default:
		return nil, err
	}
	var (
		tok    *oauth.Token
		issued time.Time
	)
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// Renew: the lease must cover the whole attempt.
			if lease, err = s.cfg.Store.Acquire(ctx, acct, s.cfg.Holder, s.cfg.LeaseTTL); err != nil {
				return nil, fmt.Errorf("refresh %s: %w", acct, err)
			}
		}
		actx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		tok, err = s.cfg.Refresher.Refresh(actx, rt, s.cfg.Scopes)
		cancel()
		issued = time.Now()
		if err == nil && (tok == nil || tok.AccessToken == "") {
			err = errors.New("token endpoint returned no access token")
		}
		if err == nil {
			break
		}
		cls, after := classify(err)
		raw := err // the stored reason, without our own "refresh ACCOUNT" prefix
		err = fmt.Errorf("refresh %s: %w", acct, err)
		switch cls {
		case classRelogin:
			return nil, s.markRelogin(ctx, raw)
		case classTransient, classThrottled:
			if attempt < s.cfg.MaxAttempts {
				d := after
				if d == 0 {
					d = s.backoff(attempt)
				}
				if d <= s.cfg.MaxBackoff {
					s.log.Info("token refresh failed; retrying", "attempt", attempt, "in", d, "err", err)
					if serr := sleep(ctx, d); serr != nil {
						return nil, serr
					}
					continue
				}
			}
			return nil, s.markFailed(ctx, err, raw, after)
		default:
			return nil, s.markFailed(ctx, err, raw, 0)
		}
	}
	// Store first, hand out after: if this write fails, the caller gets an
	// error and the access token is dropped, never a token whose rotated
	// refresh token is lost.
	access := accessOnly(tok)
	recs := []Record{TokenRecord(acct, s.kind, access), StateRecord(acct, State{LastRefresh: time.Now()})}
	if tok.RefreshToken != "" && tok.RefreshToken != rt {
		next := *stored
		next.RefreshToken = tok.RefreshToken
		if tok.IDToken != "" {
			next.IDToken = tok.IDToken
		}
		recs = append(recs, TokenRecord(acct, KindRefresh, &next))
	}
	// The server may have rotated the refresh token already, so a write
	// failing for a passing reason (a locked or restarting database) is
	// retried a few times; a lost lease is not (another holder took over).
	for try := 1; ; try++ {
		err = s.cfg.Store.Put(ctx, lease, recs...)
		if err == nil {
			break
		}
		if errors.Is(err, ErrLeaseLost) || try == 3 {
			return nil, fmt.Errorf("refresh %s: store the new token: %w", acct, err)
		}
		if serr := sleep(ctx, time.Duration(try)*200*time.Millisecond); serr != nil {
			return nil, fmt.Errorf("refresh %s: store the new token: %w", acct, err)
		}
	}
	s.log.Debug("token refreshed", "expiry", access.Expiry)
	s.notify(Event{Type: EventRefreshed, Expiry: access.Expiry})
	return s.newCached(access, issued), nil
}

// backoff is the delay before retry number attempt: exponential with full
// jitter (a random delay between half and all of it), capped at MaxBackoff.
func (s *Source) backoff(attempt int) time.Duration {
	d := s.cfg.Backoff << (attempt - 1)
	if d <= 0 || d > s.cfg.MaxBackoff {
		d = s.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (s *Source) markRelogin(ctx context.Context, cause error) error {
	acct := s.cfg.Account
	rerr := &ReloginError{Account: acct, Reason: errorReason(cause), Command: LoginCommand(acct), Err: cause}
	st, _ := LoadState(ctx, s.cfg.Store, acct)
	st.ReloginRequired, st.Reason, st.Command = true, rerr.Reason, rerr.Command
	st.LastError, st.LastErrorAt = rerr.Reason, time.Now()
	if err := s.cfg.Store.Put(ctx, nil, StateRecord(acct, st)); err != nil {
		s.log.Error("cannot record that the account needs a login", "err", err)
	}
	s.log.Warn("refresh token refused: login needed", "reason", rerr.Reason, "command", rerr.Command)
	s.notify(Event{Type: EventRelogin, Err: rerr})
	return rerr
}

// markFailed records a failed refresh (reason: the refresher's error) and
// returns err, the same error with the account named.
func (s *Source) markFailed(ctx context.Context, err, reason error, after time.Duration) error {
	cause := err
	acct := s.cfg.Account
	st, _ := LoadState(ctx, s.cfg.Store, acct)
	now := time.Now()
	st.LastError, st.LastErrorAt = errorReason(reason), now
	st.RetryAfter = now.Add(max(after, s.cfg.Cooldown))
	if err := s.cfg.Store.Put(ctx, nil, StateRecord(acct, st)); err != nil {
		s.log.Error("cannot record the refresh failure", "err", err)
	}
	s.log.Warn("token refresh failed", "err", cause, "retry_after", st.RetryAfter)
	s.notify(Event{Type: EventError, Err: cause})
	return cause
}

func (s *Source) notify(e Event) {
	if s.cfg.Notify != nil {
		e.Account, e.Resource = s.cfg.Account, s.cfg.Resource
		s.cfg.Notify(e)
	}
}

// errorReason is the text kept in the store for a failure. Refresher errors
// must not contain secrets (the oauth package's never do); this only trims.
func errorReason(err error) string {
	const maxLen = 500
	msg := err.Error()
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "…"
	}
	return msg
}

// sleep waits d or until ctx ends; a timer, not time.Sleep, so it can be
// cancelled (and so testing/synctest can drive it).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
