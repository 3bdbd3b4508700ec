package tokens

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/mailoauth/mailoauth/oauth"
)

// ErrReloginRequired matches (errors.Is) every error saying the account's
// refresh token no longer works (expired, revoked, consent withdrawn,
// password changed) or was never stored: only an interactive login helps.
//
// It is the same value as oauth.ErrReloginRequired, so one errors.Is check
// (and one CLI exit code) covers a failed login flow and a dead refresh
// token alike.
var ErrReloginRequired = oauth.ErrReloginRequired

// ReloginError says which account needs a login, why, and what to run. It
// matches ErrReloginRequired.
type ReloginError struct {
	Account string
	Reason  string // the server's answer, e.g. "invalid_grant: AADSTS700082: …"
	Command string // what the user should run, e.g. "mailoauth login work"
	// Err is the token endpoint's refusal when this process saw it (an
	// *oauth.Error with the AADSTS codes and a hint); nil when the state
	// was read from the store.
	Err error
}

// Unwrap returns Err, so errors.As finds the server's *oauth.Error.
func (e *ReloginError) Unwrap() error { return e.Err }

// Error says which account, why, and the command to run; never a token.
func (e *ReloginError) Error() string {
	msg := "account " + e.Account + " needs a new login"
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Command != "" {
		msg += "; run: " + e.Command
	}
	return msg
}

// Is makes errors.Is(err, ErrReloginRequired) true.
func (e *ReloginError) Is(target error) bool { return target == ErrReloginRequired }

// LoginCommand is the command that gives account a fresh refresh token.
func LoginCommand(account string) string { return "mailoauth login " + account }

// State is the health of an account, kept in its KindState record so that
// every process (CLI, daemon, other instances) sees the same answer and none
// retries a refresh that another has just seen fail.
type State struct {
	// ReloginRequired is set when the token endpoint refused the refresh
	// token (invalid_grant); Reason and Command say why and what to do.
	ReloginRequired bool   `json:"relogin_required,omitempty"`
	Reason          string `json:"reason,omitempty"`
	Command         string `json:"command,omitempty"`
	// LastRefresh is when a refresh last succeeded.
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	// LastError and LastErrorAt describe the last failed refresh; they are
	// cleared by the next success.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RetryAfter is the earliest time any process should try the token
	// endpoint again for this account (server Retry-After, or a cool-down
	// after failed retries).
	RetryAfter time.Time `json:"retry_after,omitzero"`
}

// Relogin returns the error for an account in this state, or nil.
func (st *State) Relogin(account string) error {
	if !st.ReloginRequired {
		return nil
	}
	return &ReloginError{Account: account, Reason: st.Reason, Command: st.Command}
}

// LoadState reads the account's State; an account without one is healthy.
func LoadState(ctx context.Context, s Store, account string) (State, error) {
	var st State
	rec, err := s.Get(ctx, account, KindState)
	if errors.Is(err, ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(rec.Value, &st); err != nil {
		return st, fmt.Errorf("state of %s: %w", account, err)
	}
	return st, nil
}

// LoadToken reads a token record (KindRefresh or an AccessKind).
func LoadToken(ctx context.Context, s Store, account string, kind Kind) (*oauth.Token, error) {
	rec, err := s.Get(ctx, account, kind)
	if err != nil {
		return nil, err
	}
	return decodeToken(rec)
}

func decodeToken(rec Record) (*oauth.Token, error) {
	var t oauth.Token
	if err := json.Unmarshal(rec.Value, &t); err != nil {
		// json errors quote no input bytes beyond a type name, but say nothing
		// about them either way: the value is a secret.
		return nil, fmt.Errorf("%s %s: stored token is not valid JSON", rec.Account, rec.Kind)
	}
	return &t, nil
}

// TokenRecord encodes tok as the record (account, kind).
func TokenRecord(account string, kind Kind, tok *oauth.Token) Record {
	v, err := json.Marshal(tok)
	if err != nil {
		panic("tokens: oauth.Token does not marshal") // only plain fields: cannot happen
	}
	return Record{Account: account, Kind: kind, Value: v}
}

// StateRecord encodes st as the account's KindState record.
func StateRecord(account string, st State) Record {
	v, err := json.Marshal(st)
	if err != nil {
		panic("tokens: State does not marshal")
	}
	return Record{Account: account, Kind: KindState, Value: v}
}

// SaveLogin stores what an interactive login returned, in one atomic write:
// the refresh record (when tok has a refresh token), the access token as the
// cache for resource (when resource is not empty), and a healthy state that
// clears any "re-login needed" mark. The account's other records (access
// tokens of other resources) stay; a new login that must not leave the old
// one's tokens behind uses ReplaceLogin.
func SaveLogin(ctx context.Context, s Store, account, resource string, tok *oauth.Token) error {
	if err := s.Put(ctx, nil, loginRecords(account, resource, tok)...); err != nil {
		return fmt.Errorf("save login of %s: %w", account, err)
	}
	return nil
}

func loginRecords(account, resource string, tok *oauth.Token) []Record {
	var recs []Record
	if tok.RefreshToken != "" {
		recs = append(recs, TokenRecord(account, KindRefresh, tok))
	}
	if resource != "" && tok.AccessToken != "" {
		recs = append(recs, TokenRecord(account, AccessKind(resource), accessOnly(tok)))
	}
	return append(recs, StateRecord(account, State{LastRefresh: time.Now()}))
}

// replaceLoginWait bounds how long ReplaceLogin waits for another process's
// refresh lease on the account: longer than a Source's default lease TTL, so
// the lease of a holder that crashed has expired by then.
var replaceLoginWait = 70 * time.Second

// ReplaceLogin stores a new interactive login as SaveLogin does and, in the
// same atomic Put, deletes every other record of the account (tombstones,
// Store promise 11): access tokens the old login cached for other resources,
// possibly for another mailbox, must not outlive it, and a crash (kill -9)
// at any instant leaves either the old login or the new one, never neither,
// which a Delete followed by a Put would not.
//
// It holds the account's refresh lease from reading the account's record
// kinds to the Put, so no Source of any process writes between the two, and
// none refreshes with the old refresh token and stores the old login's tokens
// over the new one. While another holder has the lease it waits (a refresh
// takes seconds; a crashed holder's lease expires by its TTL), at most 70
// seconds or until ctx ends. After 70 seconds it writes without the lease
// rather than lose a login the user has just completed; only then can a
// refresher that still holds the lease write between the read and the Put
// (leaving at most a stale access token for a resource the new login did not
// name, which expires by itself) or store the old login's tokens afterwards.
func ReplaceLogin(ctx context.Context, s Store, account, resource string, tok *oauth.Token) error {
	var err error
	// A lease that lapsed before the Put (a very slow store) makes the Put
	// write nothing; another holder may have written since, so read again.
	for range 3 {
		if err = replaceLogin(ctx, s, account, resource, tok); !errors.Is(err, ErrLeaseLost) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("save login of %s: %w", account, err)
	}
	return nil
}

func replaceLogin(ctx context.Context, s Store, account, resource string, tok *oauth.Token) error {
	lease, err := waitLease(ctx, s, account)
	if err != nil {
		return err
	}
	if lease != nil {
		defer func() {
			// Release even when ctx has ended, so refreshers need not sit out the TTL.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			s.Release(rctx, lease)
		}()
	}
	kinds, err := storedKinds(ctx, s, account)
	if err != nil {
		return err
	}
	recs := loginRecords(account, resource, tok)
	for _, k := range kinds {
		if !slices.ContainsFunc(recs, func(r Record) bool { return r.Kind == k }) {
			recs = append(recs, Record{Account: account, Kind: k}) // nil Value: a tombstone
		}
	}
	return s.Put(ctx, lease, recs...)
}

// replaceLeaseTTL is the lease ReplaceLogin takes: reading the kinds and one
// Put take milliseconds, and a login killed while holding it blocks the next
// login (and refreshes) of the account no longer than this.
var replaceLeaseTTL = 10 * time.Second

// waitLease acquires the account's refresh lease for ReplaceLogin, polling
// while another holder has it. It returns a nil lease and no error when
// replaceLoginWait passes first.
func waitLease(ctx context.Context, s Store, account string) (*Lease, error) {
	holder := "login-" + strconv.Itoa(os.Getpid()) + "-" + rand.Text()
	deadline := time.Now().Add(replaceLoginWait)
	wait := 10 * time.Millisecond
	for {
		lease, err := s.Acquire(ctx, account, holder, replaceLeaseTTL)
		if !errors.Is(err, ErrLeaseHeld) {
			return lease, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		if err := sleep(ctx, min(wait, left)); err != nil {
			return nil, err
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// storedKinds lists the kinds of the account's records: without decrypting
// them for this package's own store, through Records for any other Store.
func storedKinds(ctx context.Context, s Store, account string) ([]Kind, error) {
	if st, ok := s.(*store); ok {
		return st.kinds(ctx, account)
	}
	recs, err := s.Records(ctx, account)
	if err != nil {
		return nil, err
	}
	kinds := make([]Kind, len(recs))
	for i, r := range recs {
		kinds[i] = r.Kind
	}
	return kinds, nil
}

// accessOnly copies tok without its refresh and ID tokens: an access record
// must not hold a second copy of the refresh token, which would go stale
// when it rotates.
func accessOnly(tok *oauth.Token) *oauth.Token {
	t := *tok
	t.RefreshToken = ""
	t.IDToken = ""
	return &t
}

// AccountInfo is what `mailoauth status` shows about an account: no token,
// only facts about them.
type AccountInfo struct {
	Account string `json:"account"`
	State   State  `json:"state"`
	// HasRefreshToken says whether a refresh token is stored.
	HasRefreshToken bool `json:"has_refresh_token"`
	// Scope is what the login granted.
	Scope []string `json:"scope,omitempty"`
	// Access maps each resource with a cached access token to its expiry.
	Access map[string]time.Time `json:"access,omitempty"`
	// RefreshDue maps each resource with a cached access token to when it
	// is due for refresh (RefreshDue); absent for a token without expiry.
	RefreshDue map[string]time.Time `json:"refresh_due,omitempty"`
}

// Inspect summarises an account's records without revealing any token.
func Inspect(ctx context.Context, s Store, account string) (AccountInfo, error) {
	info := AccountInfo{Account: account, Access: map[string]time.Time{}, RefreshDue: map[string]time.Time{}}
	recs, err := s.Records(ctx, account)
	if err != nil {
		return info, err
	}
	for _, r := range recs {
		switch res, isAccess := r.Kind.Resource(); {
		case r.Kind == KindState:
			if err := json.Unmarshal(r.Value, &info.State); err != nil {
				return info, fmt.Errorf("state of %s: %w", account, err)
			}
		case r.Kind == KindRefresh:
			tok, err := decodeToken(r)
			if err != nil {
				return info, err
			}
			info.HasRefreshToken = tok.RefreshToken != ""
			info.Scope = tok.Scope
		case isAccess:
			tok, err := decodeToken(r)
			if err != nil {
				return info, err
			}
			info.Access[res] = tok.Expiry
			if due := RefreshDue(tok, r.Updated); !due.IsZero() {
				// The record was written right after the token was received.
				info.RefreshDue[res] = due
			}
		}
	}
	return info, nil
}
