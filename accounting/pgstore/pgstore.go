// Package pgstore keeps the accounting books in PostgreSQL (pgx v5): the
// store an accounting SaaS runs, named by DATABASE_URL. Write transactions
// run SERIALIZABLE and are retried when PostgreSQL reports a serialization
// failure, so concurrent postings of one document version post it once.
package pgstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/internal/sqlcore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the PostgreSQL accounting store; its methods are documented on
// accounting.Store.
type Store struct {
	*sqlcore.Store
}

var _ accounting.Store = Store{}

// Open connects to the database at url (postgres://…) and brings its
// schema up to date; processes opening it at once migrate one at a time.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres accounting store: parse url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(20)
	scripts, err := sqlcore.Migrations(migrationFS)
	if err == nil {
		var core *sqlcore.Store
		if core, err = sqlcore.New(ctx, db, dialect, scripts); err == nil {
			return &Store{core}, nil
		}
	}
	_ = db.Close()
	return nil, fmt.Errorf("open postgres accounting store on %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
}

// migrationLock is the advisory lock key migrations hold ("AIBL").
const migrationLock = 0x4149424c

var dialect = sqlcore.Dialect{
	Name: "postgres",
	Begin: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	},
	BeginRead: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	},
	Retryable: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01") // serialization failure, deadlock
	},
	Unique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
	MigrateLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLock),
}
