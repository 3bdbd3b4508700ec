package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// Options say where the store's encryption key comes from. The zero value
// means: key file if present, else the OS keyring, else a new key in the
// keyring or (with a warning) in a new key file beside the store.
type Options struct {
	// Key is the 32-byte data-encryption key itself, when the caller has it
	// (from an environment variable, a secret manager, a test).
	Key []byte
	// Passphrase, when set, is asked for the passphrase the key is derived
	// from with argon2id; the random salt is kept in the store.
	Passphrase func() ([]byte, error)
	// KeyFile is the key file to read or create. Default: PATH.key beside a
	// SQLite store, DefaultDir()/postgres.key for PostgreSQL.
	KeyFile string
	// NoKeyring skips the OS keyring (headless hosts where D-Bus would only
	// time out).
	NoKeyring bool
	// Logger receives the one-time key-file warning; nil means slog.Default.
	Logger *slog.Logger
}

// backend is what each storage engine implements; Open wraps it with the
// encryption every engine shares, so the Store contract's promise 9 is kept in
// one place. Values reaching a backend are already sealed, except a nil Value
// given to put, which is a tombstone: the backend deletes that record in the
// same transaction as the other writes (promise 11).
type backend interface {
	get(ctx context.Context, account string, kind Kind) ([]byte, time.Time, error)
	list(ctx context.Context, account string) ([]Record, error)
	put(ctx context.Context, lease *Lease, recs []Record) error
	deleteAccount(ctx context.Context, account string) error
	accounts(ctx context.Context) ([]string, error)
	acquire(ctx context.Context, account, holder string, ttl time.Duration) (*Lease, error)
	release(ctx context.Context, lease *Lease) error
	// meta returns the value stored under name; when there is none and init
	// is non-nil it stores init (first writer wins) and returns the stored
	// value; when there is none and init is nil it returns ErrNotFound.
	meta(ctx context.Context, name string, init []byte) ([]byte, error)
	close() error
}

// Open opens (creating if needed) the store named by storeURL:
//
//	sqlite:PATH          a SQLite file (WAL mode), e.g. sqlite:/home/me/.local/state/mailoauth/tokens.db
//	postgres://…         a PostgreSQL database shared by several instances (libpq URL)
//	mem:                 memory only, for tests
//
// opts may be nil. Errors and logs name the store by Redact(storeURL).
func Open(ctx context.Context, storeURL string, opts *Options) (Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	id := Redact(storeURL)
	scheme, rest, ok := strings.Cut(storeURL, ":")
	if !ok {
		return nil, fmt.Errorf("open store %q: want sqlite:PATH, postgres://… or mem:", id)
	}
	var (
		b       backend
		keyFile = opts.KeyFile
		err     error
	)
	switch scheme {
	case "sqlite":
		path := strings.TrimPrefix(rest, "//") // accept sqlite:///abs/path too
		if path == "" {
			return nil, fmt.Errorf("open store %q: no file path", id)
		}
		if abs, aerr := filepath.Abs(path); aerr == nil {
			path = abs
		}
		id = "sqlite:" + path
		if keyFile == "" {
			keyFile = path + ".key"
		}
		b, err = openSQLite(ctx, path)
	case "postgres", "postgresql":
		if keyFile == "" {
			if dir, derr := DefaultDir(); derr == nil {
				keyFile = filepath.Join(dir, "postgres.key")
			}
		}
		b, err = openPostgres(ctx, storeURL)
	case "mem":
		b = newMemBackend()
		if opts.Key == nil && opts.Passphrase == nil {
			// Nothing outlives the process, so a random key is the right one.
			opts = &Options{Key: randomKey()}
		}
	default:
		return nil, fmt.Errorf("open store %q: unknown scheme %q (want sqlite, postgres or mem)", id, scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", id, err)
	}
	s, err := newStore(ctx, b, id, keyFile, opts, log)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("open store %s: %w", id, err)
	}
	log.Debug("token store opened", "store", id)
	return s, nil
}

func newStore(ctx context.Context, b backend, id, keyFile string, opts *Options, log *slog.Logger) (*store, error) {
	key, err := resolveKey(ctx, b, id, keyFile, opts, log)
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	check, err := b.meta(ctx, metaKeyCheck, sl.seal(metaAccount, metaKeyCheck, keyCheckPlain))
	if err != nil {
		return nil, fmt.Errorf("read the key check: %w", err)
	}
	if _, err := sl.open(metaAccount, metaKeyCheck, check); err != nil {
		return nil, wrongKeyError(ctx, b, opts)
	}
	return &store{b: b, s: sl, id: id}, nil
}

// wrongKeyError says which key source failed, so the user knows what to
// fix: the passphrase, or a key that is not the store's own.
func wrongKeyError(ctx context.Context, b backend, opts *Options) error {
	_, saltErr := b.meta(ctx, metaSalt, nil)
	switch {
	case saltErr != nil:
		return ErrWrongKey
	case opts.Passphrase != nil && opts.Key == nil:
		return fmt.Errorf("%w: wrong passphrase", ErrWrongKey)
	}
	return fmt.Errorf("%w: it was created with a passphrase; give that passphrase", ErrWrongKey)
}

// store is the one Store implementation: encryption over a backend.
type store struct {
	b  backend
	s  *sealer
	id string
}

// String is the store's URL without its password, for logs.
func (s *store) String() string { return s.id }

func (s *store) Get(ctx context.Context, account string, kind Kind) (Record, error) {
	v, upd, err := s.b.get(ctx, account, kind)
	if err != nil {
		return Record{}, fmt.Errorf("get %s %s: %w", account, kind, err)
	}
	pt, err := s.s.open(account, kind, v)
	if err != nil {
		return Record{}, err
	}
	return Record{Account: account, Kind: kind, Value: pt, Updated: upd}, nil
}

func (s *store) Put(ctx context.Context, lease *Lease, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	sealed := make([]Record, len(recs))
	for i, r := range recs {
		if err := checkName(r.Account, r.Kind); err != nil {
			return err
		}
		if lease != nil && r.Account != lease.Account {
			return fmt.Errorf("put %s %s: lease is for another account", r.Account, r.Kind)
		}
		sealed[i] = Record{Account: r.Account, Kind: r.Kind}
		if r.Value != nil {
			// A nil Value is a tombstone (promise 11) and stays nil: sealing it
			// would store an empty value instead of deleting the record.
			sealed[i].Value = s.s.seal(r.Account, r.Kind, r.Value)
		}
	}
	if err := s.b.put(ctx, lease, sealed); err != nil {
		return fmt.Errorf("put %s: %w", recs[0].Account, err)
	}
	return nil
}

func (s *store) Records(ctx context.Context, account string) ([]Record, error) {
	recs, err := s.b.list(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("records of %s: %w", account, err)
	}
	for i := range recs {
		pt, err := s.s.open(account, recs[i].Kind, recs[i].Value)
		if err != nil {
			return nil, err
		}
		recs[i].Value = pt
	}
	return recs, nil
}

// kinds lists the kinds of an account's records without opening them, so a
// new login also replaces records that no longer decrypt (tampered, or
// sealed with a key since replaced).
func (s *store) kinds(ctx context.Context, account string) ([]Kind, error) {
	recs, err := s.b.list(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("records of %s: %w", account, err)
	}
	out := make([]Kind, len(recs))
	for i, r := range recs {
		out[i] = r.Kind
	}
	return out, nil
}

func (s *store) Delete(ctx context.Context, account string) error {
	if err := s.b.deleteAccount(ctx, account); err != nil {
		return fmt.Errorf("delete %s: %w", account, err)
	}
	return nil
}

func (s *store) Accounts(ctx context.Context) ([]string, error) {
	a, err := s.b.accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return a, nil
}

func (s *store) Acquire(ctx context.Context, account, holder string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("acquire %s: lease ttl must be positive", account)
	}
	if holder == "" {
		return nil, fmt.Errorf("acquire %s: empty holder", account)
	}
	l, err := s.b.acquire(ctx, account, holder, ttl)
	if err != nil {
		return nil, fmt.Errorf("acquire %s: %w", account, err)
	}
	return l, nil
}

func (s *store) Release(ctx context.Context, lease *Lease) error {
	if lease == nil {
		return nil
	}
	if err := s.b.release(ctx, lease); err != nil {
		return fmt.Errorf("release %s: %w", lease.Account, err)
	}
	return nil
}

func (s *store) Close() error { return s.b.close() }

func checkName(account string, kind Kind) error {
	if account == "" || kind == "" {
		return errors.New("record needs an account and a kind")
	}
	if strings.ContainsRune(account, 0) || strings.ContainsRune(string(kind), 0) {
		return errors.New("account and kind must not contain NUL")
	}
	return nil
}
