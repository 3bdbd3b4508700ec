package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

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
// clears any "re-login needed" mark.
func SaveLogin(ctx context.Context, s Store, account, resource string, tok *oauth.Token) error {
	var recs []Record
	if tok.RefreshToken != "" {
		recs = append(recs, TokenRecord(account, KindRefresh, tok))
	}
	if resource != "" && tok.AccessToken != "" {
		recs = append(recs, TokenRecord(account, AccessKind(resource), accessOnly(tok)))
	}
	recs = append(recs, StateRecord(account, State{LastRefresh: time.Now()}))
	if err := s.Put(ctx, nil, recs...); err != nil {
		return fmt.Errorf("save login of %s: %w", account, err)
	}
	return nil
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
}

// Inspect summarises an account's records without revealing any token.
func Inspect(ctx context.Context, s Store, account string) (AccountInfo, error) {
	info := AccountInfo{Account: account, Access: map[string]time.Time{}}
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
		}
	}
	return info, nil
}
