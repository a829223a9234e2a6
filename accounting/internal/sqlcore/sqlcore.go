// Package sqlcore is the SQL both accounting stores run: the SQLite and the
// PostgreSQL store differ only in their schema DDL, how a write transaction
// starts and which errors mean "retry" or "duplicate", given by a Dialect.
// Queries use $n placeholders, which both databases accept.
package sqlcore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/internal/fault"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Name names the store in errors: "sqlite" or "postgres".
	Name string
	// Begin starts a write transaction isolated from every concurrent
	// writer (SQLite BEGIN IMMEDIATE, PostgreSQL SERIALIZABLE).
	Begin func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// BeginRead starts a transaction that reads one consistent snapshot.
	BeginRead func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// Retryable reports whether a transaction failed only because of a
	// concurrent one and may be run again.
	Retryable func(error) bool
	// Unique reports whether err is a unique-constraint violation.
	Unique func(error) bool
	// MigrateLock is a statement run first in the migration transaction to
	// keep two processes from migrating at once ("" if Begin suffices).
	MigrateLock string
	// Serial is the column definition of an auto-increment BIGINT primary
	// key.
	Serial string
}

// Store implements accounting.Store on a *sql.DB.
type Store struct {
	db *sql.DB
	d  Dialect
}

var _ accounting.Store = (*Store)(nil)

// maxAttempts bounds the retries of a transaction that lost a race.
const maxAttempts = 20

// New brings db's schema up to date (migrations/*.sql, in order) and
// returns a Store on it. The Store owns db: New closes it if it fails.
func New(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: db, d: d}
	scripts, err := migrations(d)
	if err == nil {
		err = s.migrate(ctx, scripts)
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate the %s accounting store: %w", d.Name, err)
	}
	return s, nil
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations returns the embedded scripts in name order, written for d.
func migrations(d Dialect) ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		out = append(out, strings.ReplaceAll(string(b), "{{serial}}", d.Serial))
	}
	return out, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context, migrations []string) error {
	return s.write(ctx, false, func(tx *tx) error {
		if s.d.MigrateLock != "" {
			if _, err := tx.exec(s.d.MigrateLock); err != nil {
				return err
			}
		}
		if _, err := tx.exec("CREATE TABLE IF NOT EXISTS accounting_schema (version BIGINT NOT NULL)"); err != nil {
			return err
		}
		var v int
		err := tx.queryRow("SELECT version FROM accounting_schema").Scan(&v)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.exec("INSERT INTO accounting_schema (version) VALUES (0)"); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this code knows (%d)", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.exec(migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		_, err = tx.exec("UPDATE accounting_schema SET version = $1", len(migrations))
		return err
	})
}

// tx is a write transaction whose statements pass the fault hook of the
// context, so that the conformance suite can fail any one of them.
type tx struct {
	ctx  context.Context
	tx   *sql.Tx
	hook fault.Hook
	n    int
}

func (t *tx) check() error {
	if t.hook == nil {
		return nil
	}
	t.n++
	return t.hook(t.n)
}

func (t *tx) exec(q string, args ...any) (sql.Result, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	return t.tx.ExecContext(t.ctx, q, args...)
}

// row is a *sql.Row or a failure injected before the query ran.
type row struct {
	r   *sql.Row
	err error
}

func (r row) Scan(dst ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.r.Scan(dst...)
}

func (t *tx) queryRow(q string, args ...any) row {
	if err := t.check(); err != nil {
		return row{err: err}
	}
	return row{r: t.tx.QueryRowContext(t.ctx, q, args...)}
}

// write runs fn in a write transaction and commits it, running it again
// (up to maxAttempts) when it lost a race with a concurrent transaction.
// With retryUnique, a unique violation also means "retry": used where fn
// checks for the row first, so the next attempt sees it.
func (s *Store) write(ctx context.Context, retryUnique bool, fn func(*tx) error) error {
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Millisecond):
			}
		}
		err = s.attempt(ctx, fn)
		if err == nil {
			return nil
		}
		if !s.d.Retryable(err) && !(retryUnique && s.d.Unique(err)) {
			return err
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", maxAttempts, err)
}

func (s *Store) attempt(ctx context.Context, fn func(*tx) error) error {
	sqlTx, err := s.d.Begin(ctx, s.db)
	if err != nil {
		return err
	}
	t := &tx{ctx: ctx, tx: sqlTx, hook: fault.From(ctx)}
	if err := fn(t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := t.check(); err != nil { // a crash just before COMMIT
		_ = sqlTx.Rollback()
		return err
	}
	return sqlTx.Commit()
}

// read runs fn in a read-only transaction, so that a report sees one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	rtx, err := s.d.BeginRead(ctx, s.db)
	if err != nil {
		return err
	}
	defer func() { _ = rtx.Rollback() }()
	return fn(rtx)
}

// dateLayout is how dates are stored.
const dateLayout = "2006-01-02"

func fmtDate(t time.Time) string { return t.UTC().Format(dateLayout) }

func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("read stored date %q: %w", s, err)
	}
	return t, nil
}
