package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/oauth"
	"github.com/mailoauth/mailoauth/tokens"
)

// Accounts is what the daemon needs from the configured accounts. It is
// defined here, by its consumer, so the scheduler and the socket API can be
// tested against a bare tokens.Source; FromManager adapts the CLI's
// account.Manager.
type Accounts interface {
	// Names lists the configured accounts.
	Names() []string
	// Resources lists the resources of account that have a cached access
	// token in the store: those the daemon keeps fresh. An account never
	// logged in has none.
	Resources(ctx context.Context, account string) ([]string, error)
	// Token returns a valid access token for the resource of account
	// (refreshing it when due) and when it is next due for a refresh (zero:
	// never). A dead refresh token gives an error matching
	// tokens.ErrReloginRequired; an unknown account one matching
	// config.ErrNoAccount.
	Token(ctx context.Context, account, resource string) (*oauth.Token, time.Time, error)
	// User is the account's mailbox (the SASL user name), "" if unknown.
	User(account string) string
	// Status describes the account for GET /v1/status; no token in it.
	Status(ctx context.Context, account string) (any, error)
}

// FromManager adapts an account.Manager: the daemon's accounts are the
// config's, their tokens come from the manager's refresh engines (open it
// with Options.Source.Notify = Daemon.Notify so refreshes reach the hooks
// and metrics).
//
// The engines in this process hold the last access token in memory, but
// other processes change the store: a logout deletes the account's
// records, a login replaces them, and a proxy whose mail server refused a
// token deletes it (account.Invalidate). So every token handed out is first
// looked for in the store (one read); when it is not there, the manager is
// replaced by a fresh one on the same store, dropping every cached token,
// and the store decides: "login needed" after a logout, else its token or
// a refresh.
func FromManager(m *account.Manager, opts account.Options) Accounts {
	opts.Store = m.Store()
	return &managerAccounts{cfg: m.Config(), store: m.Store(), opts: opts, cur: m}
}

type managerAccounts struct {
	cfg   *config.Config
	store tokens.Store
	opts  account.Options

	mu  sync.Mutex
	cur *account.Manager
}

func (ma *managerAccounts) manager() *account.Manager {
	ma.mu.Lock()
	defer ma.mu.Unlock()
	return ma.cur
}

// reset drops every cached token by starting a new manager on the same
// store. The old one's refreshes in flight finish on their own.
func (ma *managerAccounts) reset(ctx context.Context) {
	m, err := account.Open(ctx, ma.cfg, ma.opts)
	if err != nil {
		return // cannot happen with Options.Store set; keep the old one
	}
	ma.mu.Lock()
	ma.cur = m
	ma.mu.Unlock()
}

func (ma *managerAccounts) Names() []string { return ma.cfg.AccountNames() }

// Resources are the store's access records of the account, named by the
// account package's cache keys ("exchange", "graph", "mail").
func (ma *managerAccounts) Resources(ctx context.Context, name string) ([]string, error) {
	info, err := tokens.Inspect(ctx, ma.store, name)
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

// resourceFor maps a cache key back to a resource name account.Token takes.
func resourceFor(r string) string {
	if r == "mail" {
		return "imap"
	}
	return r
}

func (ma *managerAccounts) Token(ctx context.Context, name, resource string) (*oauth.Token, time.Time, error) {
	if _, err := ma.cfg.Account(name); err != nil {
		return nil, time.Time{}, err
	}
	tok, a, err := ma.token(ctx, name, resource)
	if err == nil {
		// The engine hands out its in-memory copy; make sure the store
		// still holds it. When it does not, another process changed the
		// account: a logout (no records), a new login, or a mail server
		// refusing the token (account.Invalidate deletes the record). Then
		// the cached engines are dropped and the store decides.
		switch stored, serr := ma.stored(ctx, name, tok); {
		case serr != nil:
			err = serr
		case stored == storedNone:
			ma.reset(ctx)
			err = &tokens.ReloginError{Account: name, Reason: "not logged in", Command: tokens.LoginCommand(name)}
		case stored == storedOther:
			ma.reset(ctx)
			tok, a, err = ma.token(ctx, name, resource)
		}
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	// The engine's own schedule, when the account package exposes it.
	if nr, ok := any(a).(interface{ NextRefresh(string) time.Time }); ok {
		if t := nr.NextRefresh(resourceFor(resource)); !t.IsZero() {
			return tok, t, nil
		}
	}
	return tok, nextRefresh(tok, time.Now()), nil
}

func (ma *managerAccounts) token(ctx context.Context, name, resource string) (*oauth.Token, *account.Account, error) {
	a, err := ma.manager().Account(name)
	if err != nil {
		return nil, nil, err
	}
	tok, err := a.Token(ctx, resourceFor(resource))
	return tok, a, err
}

// What the store holds compared with a token about to be handed out.
const (
	storedSame  = iota // an access record with this token and expiry
	storedOther        // records, but none with this token
	storedNone         // no record at all: logged out
)

func (ma *managerAccounts) stored(ctx context.Context, name string, tok *oauth.Token) (int, error) {
	recs, err := ma.store.Records(ctx, name)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return storedNone, nil
	}
	for _, r := range recs {
		if _, ok := r.Kind.Resource(); !ok {
			continue
		}
		var t oauth.Token
		if json.Unmarshal(r.Value, &t) == nil && t.AccessToken == tok.AccessToken && t.Expiry.Equal(tok.Expiry) {
			return storedSame, nil
		}
	}
	return storedOther, nil
}

// nextRefresh is when tok is due, as the refresh engine decides it without
// its jitter (tokens.RefreshDue, taking now as its arrival). The engine's
// own time is never later (its jitter moves it earlier), so a token asked
// for at this time is refreshed. One already due is asked for again at half
// its remaining life.
func nextRefresh(tok *oauth.Token, now time.Time) time.Time {
	at := tokens.RefreshDue(tok, now)
	if !at.IsZero() && !at.After(now) {
		at = now.Add(tok.Expiry.Sub(now) / 2)
	}
	return at
}

func (ma *managerAccounts) User(name string) string {
	a, err := ma.manager().Account(name)
	if err != nil {
		return ""
	}
	return a.Email()
}

func (ma *managerAccounts) Status(ctx context.Context, name string) (any, error) {
	a, err := ma.manager().Account(name)
	if err != nil {
		return nil, err
	}
	st, err := a.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	return st, nil
}
