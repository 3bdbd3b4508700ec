package tokens

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgSchema is created when absent. The tables carry a mailoauth_ prefix
// because a shared PostgreSQL database usually holds other things too.
const pgSchema = `
CREATE TABLE IF NOT EXISTS mailoauth_records (
	account text NOT NULL,
	kind    text NOT NULL,
	value   bytea NOT NULL,
	updated timestamptz NOT NULL,
	PRIMARY KEY (account, kind)
);
CREATE TABLE IF NOT EXISTS mailoauth_leases (
	account text PRIMARY KEY,
	holder  text NOT NULL,
	expires timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS mailoauth_meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
`

// pgSchemaLock is the advisory-lock key that serialises schema creation:
// concurrent CREATE TABLE IF NOT EXISTS can otherwise fail on the catalog's
// unique index when several instances start at once.
const pgSchemaLock = 0x6d61696c6f617574 // "mailoaut"

// pgBackend is the store for several instances sharing accounts. The lease is
// a row with an expiry computed by the server's clock (clock_timestamp()), so
// instances on hosts with skewed clocks still agree; a row lease (not a
// session advisory lock) because it must outlive no connection and expire
// by itself when its holder dies.
type pgBackend struct {
	pool *pgxpool.Pool
}

func openPostgres(ctx context.Context, dsn string) (*pgBackend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the connection string; say less.
		return nil, errors.New("invalid PostgreSQL URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	b := &pgBackend{pool: pool}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgSchemaLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, pgSchema)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	return b, nil
}

func (b *pgBackend) get(ctx context.Context, account string, kind Kind) ([]byte, time.Time, error) {
	var (
		v   []byte
		upd time.Time
	)
	err := b.pool.QueryRow(ctx, `SELECT value, updated FROM mailoauth_records WHERE account = $1 AND kind = $2`, account, string(kind)).Scan(&v, &upd)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, ErrNotFound
	}
	return v, upd, err
}

func (b *pgBackend) list(ctx context.Context, account string) ([]Record, error) {
	rows, err := b.pool.Query(ctx, `SELECT kind, value, updated FROM mailoauth_records WHERE account = $1`, account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		var (
			kind string
			v    []byte
			upd  time.Time
		)
		if err := rows.Scan(&kind, &v, &upd); err != nil {
			return nil, err
		}
		out = append(out, Record{Account: account, Kind: Kind(kind), Value: v, Updated: upd})
	}
	return out, rows.Err()
}

func (b *pgBackend) put(ctx context.Context, lease *Lease, recs []Record) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if lease != nil {
			// FOR UPDATE holds the lease row until commit, so no one can take
			// the lease over between this check and the writes.
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM mailoauth_leases
				WHERE account = $1 AND holder = $2 AND expires > clock_timestamp() FOR UPDATE`,
				lease.Account, lease.Holder).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrLeaseLost
			}
			if err != nil {
				return err
			}
		}
		for _, r := range recs {
			if r.Value == nil { // a tombstone
				if _, err := tx.Exec(ctx, `DELETE FROM mailoauth_records WHERE account = $1 AND kind = $2`, r.Account, string(r.Kind)); err != nil {
					return err
				}
				continue
			}
			_, err := tx.Exec(ctx, `INSERT INTO mailoauth_records (account, kind, value, updated)
				VALUES ($1, $2, $3, clock_timestamp())
				ON CONFLICT (account, kind) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
				r.Account, string(r.Kind), r.Value)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *pgBackend) deleteAccount(ctx context.Context, account string) error {
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM mailoauth_records WHERE account = $1`, account); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM mailoauth_leases WHERE account = $1`, account)
		return err
	})
}

func (b *pgBackend) accounts(ctx context.Context) ([]string, error) {
	rows, err := b.pool.Query(ctx, `SELECT DISTINCT account FROM mailoauth_records ORDER BY account`)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if out == nil {
		out = []string{}
	}
	return out, err
}

func (b *pgBackend) acquire(ctx context.Context, account, holder string, ttl time.Duration) (*Lease, error) {
	// One statement: insert, or take over an expired lease, or renew our own.
	// When another holder's lease is live, the WHERE leaves the row alone and
	// RETURNING yields nothing.
	var expires time.Time
	err := b.pool.QueryRow(ctx, `INSERT INTO mailoauth_leases (account, holder, expires)
		VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
		ON CONFLICT (account) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
			WHERE mailoauth_leases.expires <= clock_timestamp() OR mailoauth_leases.holder = excluded.holder
		RETURNING expires`, account, holder, ttl.Seconds()).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, err
	}
	return &Lease{Account: account, Holder: holder, Expires: expires}, nil
}

func (b *pgBackend) release(ctx context.Context, lease *Lease) error {
	_, err := b.pool.Exec(ctx, `DELETE FROM mailoauth_leases WHERE account = $1 AND holder = $2`, lease.Account, lease.Holder)
	return err
}

func (b *pgBackend) meta(ctx context.Context, name string, init []byte) ([]byte, error) {
	var v []byte
	err := b.pool.QueryRow(ctx, `SELECT value FROM mailoauth_meta WHERE name = $1`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	if init == nil {
		return nil, ErrNotFound
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO mailoauth_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, init); err != nil {
		return nil, err
	}
	err = b.pool.QueryRow(ctx, `SELECT value FROM mailoauth_meta WHERE name = $1`, name).Scan(&v)
	return v, err
}

func (b *pgBackend) close() error {
	b.pool.Close()
	return nil
}
