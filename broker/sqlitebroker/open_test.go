package sqlitebroker_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

func TestOpenCreatesDirectoryAndReopens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "jobs.db")
	ctx := context.Background()
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("open in a missing directory: %v", err)
	}
	if _, err := b.JobInsert(ctx, newJob("q", "kept")); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("fetch: %v, %v", jobs, err)
	}
	first := jobs[0].LeaseToken
	if err := b.JobRelease(ctx, &broker.JobLeaseParams{Queue: "q", ID: "kept", Token: first}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer b.Close()
	jobs, err = b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute})
	if err != nil || len(jobs) != 1 || jobs[0].ID != "kept" {
		t.Fatalf("fetch after reopen: %v, %v", jobs, err)
	}
	if jobs[0].LeaseToken <= first {
		t.Errorf("lease token after reopen = %d, want > %d (tokens must keep growing)", jobs[0].LeaseToken, first)
	}
	if jobs[0].Attempt != 1 {
		t.Errorf("attempt after release and refetch = %d, want 1", jobs[0].Attempt)
	}
}

func TestOpenEmptyFileIsNewStore(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobs.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("open an empty file: %v", err)
	}
	defer b.Close()
	if _, err := b.JobInsert(context.Background(), newJob("q", "1")); err != nil {
		t.Fatal(err)
	}
}

// wantOpenError opens path, expects an error that wraps target (when not
// nil) and names the file, and checks the file's bytes did not change.
func wantOpenError(t *testing.T, path string, target error) {
	t.Helper()
	before, _ := os.ReadFile(path)
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err == nil {
		b.Close()
		t.Fatalf("Open(%s) succeeded, want an error", path)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("Open(%s) = %v, want an error wrapping %v", path, err, target)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file %s", err, path)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("Open changed %s after refusing it", path)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Errorf("Open left a WAL file next to %s", path)
	}
}

func TestOpenRejectsUnwritablePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A regular file where a directory should be: not creatable, even by root.
	wantOpenError(t, filepath.Join(file, "jobs.db"), nil)
	// A directory where the database file should be.
	wantOpenError(t, dir, nil)
}

func TestOpenRejectsTextFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("these are my notes, not a database\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, path, sqlitebroker.ErrNotDatabase)
}

func TestOpenRejectsCorruptStore(t *testing.T) {
	t.Parallel()
	_, path := openClosed(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the header, scramble the rest of the first page (the schema).
	for i := 100; i < 4096 && i < len(data); i++ {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wantOpenError(t, path, sqlitebroker.ErrNotDatabase)
}

func TestOpenRejectsForeignDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wantOpenError(t, path, sqlitebroker.ErrForeignDatabase)
	// Even a database with a table called "jobs" is not ours.
	path2 := filepath.Join(t.TempDir(), "other.db")
	db, err = sql.Open("sqlite", path2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE jobs (id TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wantOpenError(t, path2, sqlitebroker.ErrForeignDatabase)
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	t.Parallel()
	_, path := openClosed(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the file in rollback-journal mode so the refused open can be
	// checked byte for byte.
	if _, err := db.Exec(`PRAGMA journal_mode = DELETE; PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	wantOpenError(t, path, sqlitebroker.ErrNewerSchema)
}

// openClosed creates a store with one job and closes it.
func openClosed(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.db")
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.JobInsert(context.Background(), newJob("q", "1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return "q", path
}

// TestSecondOpenIsRefused checks that a store open in another process, or
// in another Broker of this process, is refused with a clear error, and
// that a killed holder does not leave the file locked.
func TestSecondOpenIsRefused(t *testing.T) {
	t.Parallel()
	_, path := openClosed(t)
	cmd, lines := startChild(t, "hold", path)
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var ready string
	select {
	case ready = <-lines:
	case <-time.After(20 * time.Second):
		t.Fatal("child did not open the store within 20s")
	}
	pid := strings.TrimPrefix(ready, "ready ")
	if pid == ready {
		t.Fatalf("child said %q, want ready <pid>", ready)
	}

	_, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if !errors.Is(err, sqlitebroker.ErrInUse) {
		t.Fatalf("Open while another process holds the store = %v, want ErrInUse", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "process "+pid) {
		t.Errorf("error %q should name the file %s and the holder's pid %s", msg, path, pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range lines { // the pipe closes when the child is gone
	}
	cmd.Wait()
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	defer b.Close()
	if _, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: "q", ID: "1"}); err != nil {
		t.Errorf("job written before: %v", err)
	}
	_, err = sqlitebroker.Open(path, sqlitebroker.Config{})
	if !errors.Is(err, sqlitebroker.ErrInUse) || !strings.Contains(err.Error(), "this process") {
		t.Errorf("second Open in one process = %v, want ErrInUse naming this process", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b2.Close()
}

// TestOpenThroughSymlinkIsInUse opens a store by its path, then through a
// link to the file and through a link to its directory: one store, one
// lock, so both fail with ErrInUse.
func TestOpenThroughSymlinkIsInUse(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(real, "jobs.db")
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fileLink := filepath.Join(dir, "jobs-link.db")
	if err := os.Symlink(path, fileLink); err != nil {
		t.Fatal(err)
	}
	dirLink := filepath.Join(dir, "link")
	if err := os.Symlink(real, dirLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fileLink, filepath.Join(dirLink, "jobs.db")} {
		b2, err := sqlitebroker.Open(p, sqlitebroker.Config{})
		if err == nil {
			b2.Close()
		}
		if !errors.Is(err, sqlitebroker.ErrInUse) {
			t.Errorf("Open(%s) while %s is open = %v, want ErrInUse", p, path, err)
		}
	}
}
