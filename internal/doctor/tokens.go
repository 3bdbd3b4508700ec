package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/account"
	"github.com/mailoauth/mailoauth/internal/config"
	"github.com/mailoauth/mailoauth/tokens"
)

// refreshTimeout bounds the refresh check of one resource.
const refreshTimeout = 45 * time.Second

// openStore opens the token store as the other commands do and names
// where its key comes from. The finding is returned, not added, so that it
// is listed with the other token checks, after the app registration's.
func (r *run) openStore(ctx context.Context) (*account.Manager, Finding) {
	m, err := account.Open(ctx, r.cfg, r.opts.Account)
	if err != nil {
		fix := "check that " + tokens.Redact(r.cfg.Store) + " is reachable and writable, and its key: " + r.keySource()
		if strings.Contains(err.Error(), "key does not match") {
			fix = "the store's key changed since the tokens were saved: bring back the old key (" + r.keySource() +
				"), or move the store aside and log in again"
		}
		return nil, Finding{Step: StepTokens, Status: Fail, What: "token store", Words: "the token store cannot be opened: " + err.Error(),
			Fix: fix, Error: err.Error()}
	}
	return m, Finding{Step: StepTokens, Status: OK, What: "token store", Words: tokens.Redact(r.cfg.Store) + " opens; its key comes from " + r.keySource()}
}

// keySource says where the store's encryption key comes from, in the
// order tokens.Open looks.
func (r *run) keySource() string {
	so := r.opts.Account.StoreOptions
	switch {
	case so != nil && so.Key != nil:
		return "the caller"
	case (so != nil && so.Passphrase != nil) || r.cfg.StorePassphrase.IsSet():
		return "a passphrase (store_passphrase)"
	}
	kf := ""
	if so != nil {
		kf = so.KeyFile
	}
	if p, ok := strings.CutPrefix(r.cfg.Store, "sqlite:"); ok && kf == "" {
		kf = strings.TrimPrefix(p, "//") + ".key"
	}
	if kf != "" {
		if _, err := os.Stat(kf); err == nil {
			return "the key file " + kf
		}
	}
	if so != nil && so.NoKeyring {
		return "a new key file beside the store"
	}
	return "the OS keyring"
}

// checkState is the offline part of step 4: what the store says about the
// account. It reports whether there is something to refresh.
func (r *run) checkState(ctx context.Context, a *account.Account) bool {
	st, err := a.Status(ctx)
	login := "run mailoauth login " + a.Name()
	if err != nil {
		r.fail(StepTokens, "login", "the account's records cannot be read: "+err.Error(),
			"if the store's key changed, the old tokens cannot be decrypted: "+login, err)
		return false
	}
	switch {
	case st.Health == account.HealthRelogin:
		f := Finding{Step: StepTokens, Status: Fail, What: "login", Fix: "run " + strings.TrimPrefix(st.NextAction, "run: "), Relogin: true}
		reason := st.LastError
		if reason == "" {
			reason = "the refresh token was refused"
		}
		f.Words = "needs a new sign-in: " + reloginWords(&f, errors.New(reason))
		if !st.LastErrorAt.IsZero() {
			f.Words += ", found at " + st.LastErrorAt.UTC().Format(time.RFC3339)
		}
		r.add(f)
		return false
	case !st.LoggedIn && a.AppOnly():
		r.ok(StepTokens, "login", "no app token stored yet; client credentials get one whenever needed, no login required")
		return true
	case !st.LoggedIn:
		r.add(Finding{Step: StepTokens, Status: Fail, What: "login", Words: "not logged in: no refresh token is stored for " + a.Name(),
			Fix: login, Relogin: true})
		return false
	case st.Health == account.HealthError:
		r.warn(StepTokens, "login", fmt.Sprintf("logged in, but the last refresh failed at %s: %s", st.LastErrorAt.UTC().Format(time.RFC3339), st.LastError),
			"the refresh is retried automatically; the refresh line below says whether it works now")
	default:
		who := ""
		if st.Email != "" {
			who = " as " + st.Email
		}
		words := "logged in" + who
		if a.AppOnly() {
			words = "an app token is stored"
		}
		if !st.LastRefresh.IsZero() {
			words += ", last refresh " + st.LastRefresh.UTC().Format(time.RFC3339)
		}
		r.ok(StepTokens, "login", words)
	}
	if len(st.Access) > 0 {
		now := r.now()
		var parts []string
		for _, x := range st.Access {
			switch {
			case x.Expiry.IsZero():
				parts = append(parts, x.Resource+" without expiry")
			case now.Before(x.Expiry):
				parts = append(parts, fmt.Sprintf("%s valid until %s (%s left)", x.Resource, x.Expiry.UTC().Format("15:04 UTC"), x.Expiry.Sub(now).Round(time.Minute)))
			default:
				parts = append(parts, fmt.Sprintf("%s expired at %s (renewed on next use)", x.Resource, x.Expiry.UTC().Format(time.RFC3339)))
			}
		}
		r.ok(StepTokens, "access tokens", strings.Join(parts, "; "))
	}
	return true
}

// checkRefresh runs a real refresh for each resource the account uses. It
// goes through the account's refresh engine (so a rotated refresh token is
// stored before anything else, and a refused one marks the account as the
// daemon would), on a view of the store that hides the cached access
// tokens: otherwise a still-valid cached token would be handed out and a
// dead refresh token would go unnoticed.
func (r *run) checkRefresh(ctx context.Context, m *account.Manager, a *account.Account, loggedIn bool) {
	what := "refresh"
	if a.AppOnly() {
		what = "app token"
	}
	switch {
	case !loggedIn:
		r.skip(StepTokens, what, "not tried: the account has no usable login")
		return
	case r.identityBroken || r.appBroken || (r.credsBroken && a.Config().Confidential()):
		r.skip(StepTokens, what, "not tried: the problem above comes first")
		return
	case len(r.resources) == 0:
		r.skip(StepTokens, what, "not tried: the account's scopes name no mail resource")
		return
	}
	// After a failed refresh every process waits (the server's
	// Retry-After, or a cool-down): trying now would only get that answer.
	if st, err := tokens.LoadState(ctx, m.Store(), a.Name()); err == nil && time.Now().Before(st.RetryAfter) {
		r.warn(StepTokens, what, fmt.Sprintf("not tried now: the last refresh failed at %s (%s); the next try is allowed from %s",
			st.LastErrorAt.UTC().Format(time.RFC3339), firstSentence(st.LastError), st.RetryAfter.UTC().Format(time.RFC3339)),
			"run mailoauth doctor "+a.Name()+" again after that time")
		return
	}
	opts := r.opts.Account
	opts.Store = hideAccess{m.Store()}
	opts.StoreOptions = nil
	quiet := slog.New(slog.DiscardHandler)
	// One attempt and a short cool-down: the doctor reports, it does not
	// retry, and must not hold the daemon off for long after a failure.
	opts.Source = tokens.Config{MaxAttempts: 1, Cooldown: time.Second, Jitter: -1, Logger: quiet}
	hm, err := account.Open(ctx, r.cfg, opts)
	if err != nil {
		r.fail(StepTokens, what, "cannot prepare the refresh: "+err.Error(), "", err)
		return
	}
	defer hm.Close()
	ha, err := hm.Account(a.Name())
	if err != nil {
		r.fail(StepTokens, what, err.Error(), "", err)
		return
	}
	for _, res := range r.resources {
		label := resourceLabel(r.acct, res)
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		tok, err := ha.Token(rctx, res)
		cancel()
		if err != nil {
			f := r.explain(StepTokens, what+" "+label, err)
			r.add(f)
			// Every resource refreshes from the same grant and credential,
			// and the failure starts a cool-down: the others cannot do
			// better now.
			break
		}
		r.tokenOK[res] = true
		exp := "without expiry"
		if !tok.Expiry.IsZero() {
			exp = "valid until " + tok.Expiry.UTC().Format("15:04 UTC")
		}
		if a.AppOnly() {
			r.ok(StepTokens, what+" "+label, "a new app token was issued ("+exp+")")
		} else {
			r.ok(StepTokens, what+" "+label, "the refresh token works: a new access token was issued ("+exp+")")
		}
	}
}

func resourceLabel(a *config.Account, res string) string {
	switch {
	case res == "graph":
		return "Graph"
	case a.Provider == config.Microsoft:
		return "Exchange"
	}
	return "mail"
}

// hideAccess is the token store without its cached access tokens, so the
// refresh engine must call the token endpoint. Writes go to the real store.
type hideAccess struct{ tokens.Store }

// Get reports access-token records as absent.
func (h hideAccess) Get(ctx context.Context, account string, kind tokens.Kind) (tokens.Record, error) {
	if _, isAccess := kind.Resource(); isAccess {
		return tokens.Record{}, tokens.ErrNotFound
	}
	return h.Store.Get(ctx, account, kind)
}

// Close leaves the real store open: its owner closes it.
func (hideAccess) Close() error { return nil }
