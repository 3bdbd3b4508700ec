package tokens

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // pure Go SQLite: the binary must build with CGO_ENABLED=0

	"github.com/mailoauth/mailoauth/internal/paths"
)

// sqliteSchema: one row per record, per lease, per meta value. WITHOUT ROWID
// because every lookup is by primary key.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS records (
	account TEXT NOT NULL,
	kind    TEXT NOT NULL,
	value   BLOB NOT NULL,
	updated INTEGER NOT NULL, -- Unix nanoseconds
	PRIMARY KEY (account, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
	account TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires INTEGER NOT NULL -- Unix nanoseconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
`

// sqliteBackend is the default store. Why these settings:
//   - WAL journal: the CLI and the daemon read while the other writes, and a
//     commit is one append to the WAL, so kill -9 leaves the previous or the
//     new transaction (SQLite's own atomic commit; we add nothing by hand).
//   - synchronous=FULL: a commit is on disk when Put returns, so a rotated
//     refresh token survives even a power cut, not only a process crash.
//   - busy_timeout: writers from several processes queue instead of failing.
//   - _txlock=immediate: every transaction starts with BEGIN IMMEDIATE, taking
//     the write lock first; a read-then-write transaction can then never fail
//     with SQLITE_BUSY halfway (which busy_timeout cannot retry), and the lease
//     check-and-set is serialised across processes.
//
// Lease expiry uses this machine's clock: a SQLite file is shared only by
// processes on one host.
type sqliteBackend struct {
	db *sql.DB
}

func openSQLite(ctx context.Context, path string) (*sqliteBackend, error) {
	if err := paths.PrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	// Create the file ourselves so it is 0600 from the first byte; SQLite
	// gives its -wal and -shm files the database file's permissions.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	b := &sqliteBackend{db: db}
	if err := b.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqliteSchema)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	return b, nil
}

func (b *sqliteBackend) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (b *sqliteBackend) get(ctx context.Context, account string, kind Kind) ([]byte, time.Time, error) {
	var (
		v   []byte
		upd int64
	)
	err := b.db.QueryRowContext(ctx, `SELECT value, updated FROM records WHERE account = ? AND kind = ?`, account, string(kind)).Scan(&v, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return v, time.Unix(0, upd), nil
}

func (b *sqliteBackend) list(ctx context.Context, account string) ([]Record, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT kind, value, updated FROM records WHERE account = ?`, account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		var (
			kind string
			v    []byte
			upd  int64
		)
		if err := rows.Scan(&kind, &v, &upd); err != nil {
			return nil, err
		}
		out = append(out, Record{Account: account, Kind: Kind(kind), Value: v, Updated: time.Unix(0, upd)})
	}
	return out, rows.Err()
}

func (b *sqliteBackend) put(ctx context.Context, lease *Lease, recs []Record) error {
	return b.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		if lease != nil {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM leases WHERE account = ? AND holder = ? AND expires > ?`,
				lease.Account, lease.Holder, now).Scan(&n)
			if err != nil {
				return err
			}
			if n == 0 {
				return ErrLeaseLost
			}
		}
		for _, r := range recs {
			if r.Value == nil { // a tombstone
				if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE account = ? AND kind = ?`, r.Account, string(r.Kind)); err != nil {
					return err
				}
				continue
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO records (account, kind, value, updated) VALUES (?, ?, ?, ?)
				ON CONFLICT (account, kind) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
				r.Account, string(r.Kind), r.Value, now)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *sqliteBackend) deleteAccount(ctx context.Context, account string) error {
	return b.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM records WHERE account = ?`, account); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE account = ?`, account)
		return err
	})
}

func (b *sqliteBackend) accounts(ctx context.Context) ([]string, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT DISTINCT account FROM records ORDER BY account`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (b *sqliteBackend) acquire(ctx context.Context, account, holder string, ttl time.Duration) (*Lease, error) {
	var l *Lease
	err := b.inTx(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		var (
			cur string
			exp int64
		)
		err := tx.QueryRowContext(ctx, `SELECT holder, expires FROM leases WHERE account = ?`, account).Scan(&cur, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case cur != holder && exp > now.UnixNano():
			return ErrLeaseHeld
		}
		expires := now.Add(ttl)
		_, err = tx.ExecContext(ctx, `INSERT INTO leases (account, holder, expires) VALUES (?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, expires = excluded.expires`,
			account, holder, expires.UnixNano())
		if err != nil {
			return err
		}
		l = &Lease{Account: account, Holder: holder, Expires: expires}
		return nil
	})
	return l, err
}

func (b *sqliteBackend) release(ctx context.Context, lease *Lease) error {
	_, err := b.db.ExecContext(ctx, `DELETE FROM leases WHERE account = ? AND holder = ?`, lease.Account, lease.Holder)
	return err
}

func (b *sqliteBackend) meta(ctx context.Context, name string, init []byte) ([]byte, error) {
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if init == nil {
		return nil, ErrNotFound
	}
	err = b.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, init); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	})
	return v, err
}

func (b *sqliteBackend) close() error { return b.db.Close() }
