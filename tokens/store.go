package tokens

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailoauth/mailoauth/internal/paths"
)

// Kind names what a record holds for an account. The same account has one
// refresh record, one state record and one access record per resource.
type Kind string

const (
	// KindRefresh holds the account's oauth.Token as the last login or
	// refresh left it, with its (possibly rotated) refresh token.
	KindRefresh Kind = "refresh"
	// KindState holds the account's State: health, last refresh, last error.
	KindState Kind = "state"
)

// accessPrefix starts the Kind of every access-token record.
const accessPrefix = "access:"

// AccessKind is the Kind of the access token cached for resource (for
// example "imap", "smtp" or "graph"): one token request serves one resource,
// so one refresh token feeds several access records.
func AccessKind(resource string) Kind { return Kind(accessPrefix + resource) }

// Resource returns the resource of an access Kind and whether k is one.
func (k Kind) Resource() (string, bool) {
	return strings.CutPrefix(string(k), accessPrefix)
}

// Record is one stored value. Value is plaintext on the way in and out; the
// store encrypts it at rest with the account and kind as additional data.
// A nil Value given to Put deletes the record (a tombstone, Store promise 11).
type Record struct {
	Account string
	Kind    Kind
	Value   []byte
	// Updated is when the record was last written; the store sets it.
	Updated time.Time
}

// Lease is a time-limited right to refresh one account, held by one holder
// (a process or goroutine naming itself with a random string). It is how
// processes sharing a store agree that only one of them calls the token
// endpoint, and its expiry is why a crashed holder never blocks the others.
type Lease struct {
	Account string
	Holder  string
	Expires time.Time
}

var (
	// ErrNotFound: the store holds no such record.
	ErrNotFound = errors.New("not found")
	// ErrLeaseHeld: another holder has an unexpired lease on the account.
	ErrLeaseHeld = errors.New("refresh lease held by another process")
	// ErrLeaseLost: the lease passed to Put expired or was taken over, so the
	// write was refused (another holder may have refreshed meanwhile).
	ErrLeaseLost = errors.New("refresh lease lost")
	// ErrWrongKey: the store was encrypted with another key (wrong
	// passphrase, other key file, keyring entry replaced).
	ErrWrongKey = errors.New("store key does not match this store")
	// ErrPassphraseRequired: the store's key is derived from a passphrase
	// (Options.Passphrase) and none was given.
	ErrPassphraseRequired = errors.New("store key is derived from a passphrase")
	// ErrDecrypt: a record failed authentication: it was tampered with, torn,
	// or copied from another account or kind.
	ErrDecrypt = errors.New("record failed to decrypt")
)

// Store keeps token records, encrypted, and the refresh leases that let
// several processes share them. Implementations: SQLite ("sqlite:PATH"),
// PostgreSQL ("postgres://…") and memory ("mem:"), all opened with Open and
// all checked by the same conformance suite.
//
// The contract, which every implementation keeps:
//
//  1. Get returns the record last written for (account, kind), decrypted, or
//     an error matching ErrNotFound. A record that fails authentication gives
//     an error matching ErrDecrypt, never wrong plaintext.
//  2. Put writes all its records atomically: after any crash (even kill -9 at
//     any instant) a reader sees either all of them with their new values or
//     all with their previous values, never a mix and never a torn value.
//     When Put returns nil the records are durable.
//  3. Put with a non-nil lease writes only while that lease is still held by
//     its holder and unexpired, checked in the same transaction as the write;
//     otherwise it writes nothing and returns an error matching ErrLeaseLost.
//  4. Records returns every record of an account (any order); an unknown
//     account gives an empty slice and no error.
//  5. Delete removes every record and the lease of an account; deleting an
//     unknown account is not an error.
//  6. Accounts lists the accounts that have at least one record, sorted.
//  7. Acquire grants holder the account's lease for ttl when no lease exists,
//     the lease has expired, or holder already holds it (then it is renewed).
//     Otherwise it returns an error matching ErrLeaseHeld at once, without
//     waiting. Exactly one of several concurrent callers, in any number of
//     processes, gets an unexpired lease.
//  8. Release gives a lease up if its holder still holds it; releasing a lease
//     that expired or was taken over is not an error and touches nothing.
//  9. Values are sealed with AES-256-GCM and the account and kind as
//     additional data; no method logs or returns a value, key or password
//     in an error.
//  10. A Store is safe for concurrent use; Close releases its resources and
//     is the last call.
//  11. A Record with a nil Value passed to Put is a tombstone: it deletes
//     that (account, kind) in the same transaction as the Put's other
//     records, so promises 2 and 3 cover it too (a crash leaves the record
//     deleted with the new values written, or nothing changed; under a lost
//     lease nothing is deleted). Deleting a record that does not exist is
//     not an error. Records are applied in order, so the last one for an
//     (account, kind) wins. An empty but non-nil Value is a value, not a
//     tombstone. This is how a new login replaces an account's records in
//     one atomic write (ReplaceLogin) instead of a Delete then a Put, which
//     a crash between the two would leave with no token at all.
type Store interface {
	Get(ctx context.Context, account string, kind Kind) (Record, error)
	Put(ctx context.Context, lease *Lease, recs ...Record) error
	Records(ctx context.Context, account string) ([]Record, error)
	Delete(ctx context.Context, account string) error
	Accounts(ctx context.Context) ([]string, error)
	Acquire(ctx context.Context, account, holder string, ttl time.Duration) (*Lease, error)
	Release(ctx context.Context, lease *Lease) error
	Close() error
}

// DefaultDir is the directory of the default store: $MAILOAUTH_STATE_DIR,
// else $XDG_STATE_HOME/mailoauth, else ~/.local/state/mailoauth. State, not
// config or cache: tokens must survive a cache purge and are not hand-edited.
// It is paths.StateDir, so the library and the CLI agree on one folder.
func DefaultDir() (string, error) { return paths.StateDir() }

// DefaultURL is the store used when the configuration names none: the SQLite
// file tokens.db in DefaultDir.
func DefaultURL() (string, error) {
	d, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return "sqlite:" + filepath.Join(d, "tokens.db"), nil
}

// Redact returns a store URL fit for logs and errors: a PostgreSQL password,
// in the userinfo or in a password= parameter, is replaced by "xxxxx".
func Redact(storeURL string) string {
	scheme, _, _ := strings.Cut(storeURL, ":")
	switch scheme {
	case "postgres", "postgresql":
	default:
		return storeURL
	}
	u, err := url.Parse(storeURL)
	if err != nil {
		// Unparseable: show only the scheme rather than risk a password.
		return scheme + "://(unparseable)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
