package sqlitebroker

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// applicationID marks a SQLite file as an aibos-worker store ("AIBW").
const applicationID = 0x41494257

// Errors Open returns for a file it will not use. They are wrapped with the
// file's name; test them with errors.Is.
var (
	// ErrNotDatabase: the file is not a SQLite database (or is corrupt).
	ErrNotDatabase = errors.New("file is not a SQLite database or is corrupt")
	// ErrForeignDatabase: the file is a SQLite database of another application.
	ErrForeignDatabase = errors.New("file is a SQLite database of another application, not an aibos-worker store")
	// ErrInUse: another Broker, in this process or another, has the file open.
	ErrInUse = errors.New("store file is in use")
	// ErrNewerSchema: the store was written by a newer version of this package.
	ErrNewerSchema = errors.New("store was written by a newer version of aibos-worker")
)

// migrations returns the embedded migration scripts in order.
func migrations() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	scripts := make([]string, 0, len(names))
	for _, n := range names {
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		scripts = append(scripts, string(b))
	}
	return scripts, nil
}

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// checkFile creates path's directory and, if the file exists, checks that it
// is an aibos-worker store this code can read, without writing to it.
func checkFile(path string, busy time.Duration) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("open sqlite store %s: create directory: %w", path, err)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("open sqlite store %s: path is a directory", path)
	}
	if st.Size() == 0 {
		return nil // SQLite treats an empty file as an empty database
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("open sqlite store %s: %w (no SQLite header)", path, ErrNotDatabase)
	}
	// A connection without pragmas: nothing below writes to the file.
	q := fmt.Sprintf("?_pragma=busy_timeout(%d)", busy.Milliseconds())
	db, err := sql.Open("sqlite", "file:"+escapePath(path)+q)
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = inspect(context.Background(), db, path)
	return err
}

// inspect reads the file's marks and returns how many migrations it has run.
// It fails if the file is not ours or is newer than this code.
func inspect(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, path string) (int, error) {
	var appID, version, objects int
	err := q.QueryRowContext(ctx, "SELECT (SELECT application_id FROM pragma_application_id), "+
		"(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema)").Scan(&appID, &version, &objects)
	if err != nil {
		return 0, fmt.Errorf("open sqlite store %s: %w: %v", path, ErrNotDatabase, err)
	}
	scripts, err := migrations()
	if err != nil {
		return 0, fmt.Errorf("open sqlite store %s: read embedded migrations: %w", path, err)
	}
	switch {
	case appID == 0 && version == 0 && objects == 0:
		return 0, nil // a new, empty database
	case appID != applicationID:
		return 0, fmt.Errorf("open sqlite store %s: %w (application_id %#x, %d schema objects)", path, ErrForeignDatabase, appID, objects)
	case version > len(scripts):
		return 0, fmt.Errorf("open sqlite store %s: %w (schema version %d, this code knows up to %d)", path, ErrNewerSchema, version, len(scripts))
	}
	return version, nil
}

// migrate applies the migrations the file has not run yet, in one
// transaction, re-checking the file's marks under the write lock so that two
// processes opening a new file at once migrate it once.
func migrate(db *sql.DB, path string) error {
	ctx := context.Background()
	scripts, err := migrations()
	if err != nil {
		return fmt.Errorf("open sqlite store %s: read embedded migrations: %w", path, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	defer tx.Rollback()
	version, err := inspect(ctx, tx, path)
	if err != nil {
		return err
	}
	if version == len(scripts) {
		return nil
	}
	for i := version; i < len(scripts); i++ {
		if _, err := tx.ExecContext(ctx, scripts[i]); err != nil {
			return fmt.Errorf("open sqlite store %s: apply migration %d: %w", path, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(scripts))); err != nil {
		return fmt.Errorf("open sqlite store %s: record schema version: %w", path, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
		return fmt.Errorf("open sqlite store %s: mark file: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("open sqlite store %s: commit migrations: %w", path, err)
	}
	return nil
}
