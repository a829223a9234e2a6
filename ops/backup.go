package ops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for VACUUM INTO and integrity_check

	worker "github.com/aibos/worker"
)

// TypeBackup is the job type that backs the stores up.
const TypeBackup = "backup"

// ManifestFile describes a backup inside its directory; a directory
// without one is an unfinished backup.
const ManifestFile = "backup.json"

// BackupConfig configures backups.
type BackupConfig struct {
	// DataDir is the embedded stores' directory: every SQLite database at
	// its top level (the job store, the accounting ledger) is copied with
	// VACUUM INTO, which reads one consistent snapshot while writers go
	// on; the other files at its top level (the audit key and head, the
	// encryption key) are copied as they are. Subdirectories (report
	// files, which can be generated again) and SQLite's -wal, -shm,
	// -journal and .lock companions are left out. "" backs up no files.
	DataDir string
	// First names the files of DataDir copied before all others, in this
	// order; the rest follow by name. Put the job store first: the copies
	// are taken one after another, not at one instant, and with the job
	// store copied before the ledger every job in the backup names
	// documents the ledger copy holds (they were written before the job
	// was enqueued), and every posting the job store has as done is in
	// the ledger copy. A job the restored service runs again finds its
	// posting there and is absorbed by the posting's idempotency key. The
	// other order loses postings: the job store says done, the ledger copy
	// predates them.
	First []string
	// Dir receives one directory per backup, named by its UTC time.
	// Required when DataDir is set.
	Dir string
	// Keep is how many backups are kept: older ones are removed after a
	// new one is complete. Defaults to 7.
	Keep int
	// Redis, when set, is asked for a BGSAVE, and the backup waits until
	// Redis reports the save finished (LASTSAVE moved on, INFO persistence
	// says ok). Redis writes the RDB file on its own host; the backup
	// reports when and how it went.
	Redis redis.UniversalClient
	// RedisTimeout bounds the wait for the BGSAVE. Defaults to 10m.
	RedisTimeout time.Duration
	// Now reads the clock that names backups. Defaults to time.Now.
	Now func() time.Time
}

// Backup is the backup processor.
type Backup struct {
	cfg BackupConfig
}

// NewBackup checks cfg and returns the processor.
func NewBackup(cfg BackupConfig) (*Backup, error) {
	if cfg.DataDir == "" && cfg.Redis == nil {
		return nil, errors.New("backup: nothing to back up: set the data directory, Redis or both")
	}
	if cfg.DataDir != "" && cfg.Dir == "" {
		return nil, errors.New("backup: the backup directory is required")
	}
	if cfg.Keep < 0 {
		return nil, fmt.Errorf("backup: keep %d is negative", cfg.Keep)
	}
	if cfg.Keep == 0 {
		cfg.Keep = 7
	}
	if cfg.RedisTimeout <= 0 {
		cfg.RedisTimeout = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backup{cfg: cfg}, nil
}

// Manifest is what a backup holds, written last as backup.json.
type Manifest struct {
	// Time is when the backup started (UTC).
	Time time.Time `json:"time"`
	// Dir is the backup's directory (empty when only Redis was saved).
	Dir string `json:"dir,omitempty"`
	// Files are listed in the order they were copied.
	Files []ManifestItem `json:"files,omitempty"`
	// Redis reports the BGSAVE, when Redis was backed up.
	Redis *RedisSave `json:"redis,omitempty"`
	// Removed names the older backups retention removed.
	Removed []string `json:"removed,omitempty"`
}

// ManifestItem is one file of a backup.
type ManifestItem struct {
	Name   string `json:"name"`
	SQLite bool   `json:"sqlite,omitempty"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// RedisSave reports a BGSAVE.
type RedisSave struct {
	// Nodes are the Redis servers saved (each master of a Cluster).
	Nodes []RedisNodeSave `json:"nodes"`
}

// RedisNodeSave is one server's save.
type RedisNodeSave struct {
	Addr     string    `json:"addr"`
	LastSave time.Time `json:"lastSave"`
	Status   string    `json:"status"` // rdb_last_bgsave_status: "ok"
	RDBFile  string    `json:"rdbFile,omitempty"`
}

// Process runs one backup job; its result is the Manifest. A backup
// copies every tenant's data, so a job with a tenant is refused.
func (b *Backup) Process(ctx context.Context, job *worker.Job) error {
	if job.TenantID != "" {
		return invalid("job %s has tenant %q: a backup copies every tenant's data and is an operator's job", job.ID, job.TenantID)
	}
	m, err := b.Run(ctx)
	if err != nil {
		return err
	}
	return worker.SetResult(ctx, m)
}

// backupLayout names backup directories; it sorts by time.
const backupLayout = "20060102T150405.000Z"

// Run makes one backup and applies the retention.
func (b *Backup) Run(ctx context.Context) (*Manifest, error) {
	m := &Manifest{Time: b.cfg.Now().UTC()}
	files := b.cfg.DataDir != ""
	if files {
		// A service on Redis and PostgreSQL may have no data directory:
		// then only Redis is saved.
		if _, err := os.Stat(b.cfg.DataDir); errors.Is(err, os.ErrNotExist) && b.cfg.Redis != nil {
			files = false
		}
	}
	if files {
		if err := b.files(ctx, m); err != nil {
			return nil, err
		}
	}
	if b.cfg.Redis != nil {
		save, err := bgsave(ctx, b.cfg.Redis, b.cfg.RedisTimeout)
		if err != nil {
			return nil, fmt.Errorf("backup: redis: %w", err)
		}
		m.Redis = save
	}
	if files {
		if err := writeJSON(filepath.Join(m.Dir, ManifestFile), m); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		removed, err := b.prune()
		m.Removed = removed
		if err != nil {
			return m, fmt.Errorf("backup: retention: %w", err)
		}
	}
	return m, nil
}

// files copies the data directory into a new backup directory, first
// under a temporary name so that an unfinished copy never looks like a
// backup.
func (b *Backup) files(ctx context.Context, m *Manifest) error {
	name := m.Time.Format(backupLayout)
	final := filepath.Join(b.cfg.Dir, name)
	tmp := filepath.Join(b.cfg.Dir, "."+name+".partial")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return fmt.Errorf("backup: create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	entries, err := os.ReadDir(b.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("backup: read the data directory: %w", err)
	}
	rank := func(name string) int {
		if i := slices.Index(b.cfg.First, name); i >= 0 {
			return i
		}
		return len(b.cfg.First)
	}
	slices.SortStableFunc(entries, func(x, y os.DirEntry) int { return rank(x.Name()) - rank(y.Name()) })
	for _, e := range entries {
		if !e.Type().IsRegular() || skipped(e.Name()) {
			continue
		}
		src, dst := filepath.Join(b.cfg.DataDir, e.Name()), filepath.Join(tmp, e.Name())
		isDB, err := isSQLite(src)
		if err == nil {
			if isDB {
				err = vacuumInto(ctx, src, dst)
			} else {
				err = copyFile(src, dst)
			}
		}
		if err != nil {
			return fmt.Errorf("backup: copy %s: %w", e.Name(), err)
		}
		item, err := describe(dst)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		item.SQLite = isDB
		m.Files = append(m.Files, *item)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("backup: name the backup: %w", err)
	}
	ok = true
	m.Dir = final
	return syncDir(b.cfg.Dir)
}

// skipped reports the files a backup leaves out: SQLite's companions,
// which VACUUM INTO has read through already, and lock files.
func skipped(name string) bool {
	for _, s := range []string{"-wal", "-shm", "-journal", ".lock"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return strings.HasPrefix(name, ".")
}

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

func isSQLite(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	n, err := io.ReadFull(f, head)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return false, nil
	}
	return err == nil && bytes.Equal(head[:n], sqliteMagic), err
}

// openSQLite opens a database file for a backup's or restore's own use.
func openSQLite(path string, readOnly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	if readOnly {
		q.Set("mode", "ro")
	}
	return sql.Open("sqlite", "file:"+url.PathEscape(path)+"?"+q.Encode())
}

// vacuumInto writes a consistent, compacted copy of the database at src
// to dst (which must not exist) while other connections go on writing,
// and checks the copy's integrity.
func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := openSQLite(src, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("vacuum into the backup: %w", err)
	}
	return IntegrityCheck(ctx, dst)
}

// IntegrityCheck runs PRAGMA integrity_check on the SQLite database at
// path, read-only, and returns an error quoting what it found unless it
// answers "ok".
func IntegrityCheck(ctx context.Context, path string) error {
	db, err := openSQLite(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", filepath.Base(path), err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity check of %s: %w", filepath.Base(path), err)
		}
		found = append(found, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", filepath.Base(path), err)
	}
	if len(found) != 1 || found[0] != "ok" {
		return fmt.Errorf("integrity check of %s failed: %s", filepath.Base(path), strings.Join(found, "; "))
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// describe sizes and hashes a copied file.
func describe(path string) (*ManifestItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", filepath.Base(path), err)
	}
	return &ManifestItem{Name: filepath.Base(path), Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(body, '\n'), 0o640); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return syncDir(filepath.Dir(path))
}

// List returns the complete backups in dir (those with a manifest),
// oldest first.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := time.Parse(backupLayout, e.Name()); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), ManifestFile)); err == nil {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// prune removes the oldest complete backups beyond Keep, and unfinished
// ones left by a crash.
func (b *Backup) prune() ([]string, error) {
	entries, err := os.ReadDir(b.cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".partial") {
			continue
		}
		// An hour untouched: a crashed run's, not one still copying.
		if info, err := e.Info(); err == nil && b.cfg.Now().Sub(info.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(b.cfg.Dir, e.Name()))
		}
	}
	all, err := List(b.cfg.Dir)
	if err != nil || len(all) <= b.cfg.Keep {
		return nil, err
	}
	old := all[:len(all)-b.cfg.Keep]
	for _, name := range old {
		if err := os.RemoveAll(filepath.Join(b.cfg.Dir, name)); err != nil {
			return nil, err
		}
	}
	return old, nil
}
