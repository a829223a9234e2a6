// Package sqlitestore keeps the accounting books in an embedded SQLite file
// (modernc.org/sqlite, no cgo): the default store, under the service's data
// directory. Several processes may open the same file; write transactions
// take the file's write lock at BEGIN (BEGIN IMMEDIATE), so postings
// serialise.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/internal/sqlcore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is the SQLite accounting store; its methods are documented on
// accounting.Store.
type Store struct {
	*sqlcore.Store
}

var _ accounting.Store = Store{}

// Open opens (creating it and its directory if needed) the books file at
// path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite accounting store: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("open sqlite accounting store %s: create directory: %w", path, err)
	}
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	db, err := sql.Open("sqlite", "file:"+url.PathEscape(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite accounting store %s: %w", path, err)
	}
	core, err := sqlcore.New(ctx, db, dialect)
	if err != nil {
		return nil, fmt.Errorf("open sqlite accounting store %s: %w", path, err)
	}
	return &Store{core}, nil
}

var dialect = sqlcore.Dialect{
	Name:   "sqlite",
	Serial: "INTEGER PRIMARY KEY", // the rowid
	Begin: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, nil) // IMMEDIATE, from _txlock
	},
	// A read also takes the write lock at BEGIN (the DSN's _txlock): the
	// price of one snapshot for reports, which are short.
	BeginRead: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		return db.BeginTx(ctx, nil)
	},
	Retryable: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code()&0xff == sqlite3.SQLITE_BUSY || e.Code()&0xff == sqlite3.SQLITE_LOCKED)
	},
	Unique: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
}
