package ops_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/ops"
	"github.com/aibos/worker/retry"
)

// jobTotal counts a queue's jobs in every state.
func jobTotal(t *testing.T, b broker.Broker, queue string) int64 {
	t.Helper()
	s, err := b.QueueStats(context.Background(), &broker.QueueStatsParams{Queue: queue})
	if err != nil {
		t.Fatal(err)
	}
	return s.Total()
}

// TestBackupUnderLoadRestoresAConsistentCut backs up a data directory
// while jobs are inserted and processed and entries posted, restores the
// backup into a new directory and opens the stores there: the books
// balance, and the counts lie between those before and after the backup.
func TestBackupUnderLoadRestoresAConsistentCut(t *testing.T) {
	ctx := context.Background()
	data, backups := filepath.Join(t.TempDir(), "data"), filepath.Join(t.TempDir(), "backups")
	b, err := sqlitebroker.Open(filepath.Join(data, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := sqlitestore.Open(ctx, filepath.Join(data, "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := os.WriteFile(filepath.Join(data, "audit.key"), []byte("key material\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	books := accounting.Books{Tenant: "tenant-a", Company: "acme"}
	seedEntries(t, st, books, 1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var posted, inserted atomic.Int64
	errs := make(chan error, 2)
	// loop runs step(0), step(1), ... until stop, or until a step fails.
	loop := func(step func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	loop(func(int) error { // invoices posted
		_, err := st.JournalPost(ctx, books, accounting.JournalEntry{Date: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Memo: "load",
			Lines: []accounting.EntryLine{{Account: accounting.AccountCash, Debit: 5, Currency: "EUR"}, {Account: accounting.AccountEquity, Credit: 5, Currency: "EUR"}}})
		if err == nil {
			posted.Add(1)
		}
		return err
	})
	loop(func(i int) error { // jobs enqueued and processed
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: fmt.Sprintf("j%d", i), Queue: "invoices", Type: "t", MaxAttempts: 1}); err != nil {
			return err
		}
		inserted.Add(1)
		jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "invoices", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w"})
		if err == nil && len(jobs) == 1 && i%2 == 0 {
			_, err = b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: "invoices", ID: jobs[0].ID, Token: jobs[0].LeaseToken}}})
		}
		return err
	})
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("load", func() bool { return posted.Load() > 20 && inserted.Load() > 20 })
	entriesBefore, jobsBefore := posted.Load()+1, inserted.Load()
	bk, err := ops.NewBackup(ops.BackupConfig{DataDir: data, Dir: backups, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bk.Run(ctx)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("backup under load: %v", err)
	}
	// The writers must have gone on during the backup, or it was not
	// under load: wait until they did some more.
	entriesAfter, jobsAfter := posted.Load()+1, inserted.Load()
	waitFor("more load", func() bool { return posted.Load()+1 > entriesAfter && inserted.Load() > jobsAfter })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("load: %v", err)
	}

	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	if !slices.Equal(names, []string{"accounting.db", "audit.key", "worker.db"}) {
		t.Errorf("backup holds %v, want the two databases and the key file (no -wal, -shm or .lock)", names)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := ops.Restore(ctx, m.Dir, restored, false); err != nil {
		t.Fatalf("restore into a new directory: %v", err)
	}
	rst, err := sqlitestore.Open(ctx, filepath.Join(restored, "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	accountingtest.CheckBooks(t, rst)
	n, err := rst.JournalCount(ctx, books)
	_ = rst.Close()
	if err != nil || int64(n) < entriesBefore || int64(n) > entriesAfter {
		t.Errorf("restored ledger holds %d entries (%v); the backup ran while it grew from %d to %d", n, err, entriesBefore, entriesAfter)
	}
	rb, err := sqlitebroker.Open(filepath.Join(restored, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := jobTotal(t, rb, "invoices")
	_ = rb.Close()
	if got < jobsBefore || got > jobsAfter {
		t.Errorf("restored job store holds %d jobs; the backup ran while it grew from %d to %d", got, jobsBefore, jobsAfter)
	}
	if key, err := os.ReadFile(filepath.Join(restored, "audit.key")); err != nil || string(key) != "key material\n" {
		t.Errorf("restored key file: %q, %v", key, err)
	}
}

func TestBackupKeepsTheNewestN(t *testing.T) {
	ctx := context.Background()
	data, backups := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "audit.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	bk, err := ops.NewBackup(ops.BackupConfig{DataDir: data, Dir: backups, Keep: 2, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for i := range 4 {
		at = at.Add(24 * time.Hour)
		m, err := bk.Run(ctx)
		if err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		made = append(made, filepath.Base(m.Dir))
	}
	got, err := ops.List(backups)
	if err != nil || !slices.Equal(got, made[2:]) {
		t.Errorf("backups kept: %v, %v; want the newest two of %v", got, err, made)
	}
}

func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	data, backups := t.TempDir(), t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(data, "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	seedEntries(t, st, accounting.Books{Tenant: "t", Company: "c"}, 50)
	_ = st.Close()
	bk, err := ops.NewBackup(ops.BackupConfig{DataDir: data, Dir: backups})
	if err != nil {
		t.Fatal(err)
	}
	m, err := bk.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}

	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Restore(ctx, m.Dir, busy, false); !errors.Is(err, ops.ErrDataDirNotEmpty) {
		t.Errorf("restore into a non-empty directory: %v, want ErrDataDirNotEmpty", err)
	}
	if _, err := ops.Restore(ctx, m.Dir, busy, true); err != nil {
		t.Errorf("restore --force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(busy, "other")); err != nil {
		t.Errorf("restore --force removed a file the backup does not hold: %v", err)
	}
	if _, err := ops.Restore(ctx, t.TempDir(), t.TempDir(), false); err == nil {
		t.Error("restore of a directory without a manifest succeeded")
	}

	// A damaged database: the manifest's hash no longer matches; with the
	// hash made to match, the integrity check still refuses it.
	db := filepath.Join(m.Dir, "accounting.db")
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096 + 100; i < len(raw) && i < 4096*3; i++ {
		raw[i] ^= 0x5a
	}
	if err := os.WriteFile(db, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, err := ops.Restore(ctx, m.Dir, fresh, false); err == nil || !strings.Contains(err.Error(), "differs from the manifest") {
		t.Fatalf("restore of a damaged backup: %v, want the hash mismatch", err)
	}
	sum := sha256.Sum256(raw)
	for i := range m.Files {
		if m.Files[i].Name == "accounting.db" {
			m.Files[i].SHA256 = hex.EncodeToString(sum[:])
		}
	}
	body, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(m.Dir, ops.ManifestFile), body, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Restore(ctx, m.Dir, fresh, false); err == nil || !strings.Contains(err.Error(), "integrity check") {
		t.Fatalf("restore of a damaged backup whose manifest matches: %v, want the integrity check to refuse it", err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused restore created the data directory: %v", err)
	}
}

func TestBackupRedisWaitsForTheSave(t *testing.T) {
	c := redistest.Client(t)
	start := time.Now().Add(-time.Second)
	// The data directory of a service on Redis and PostgreSQL may not
	// exist: then Redis alone is saved.
	bk, err := ops.NewBackup(ops.BackupConfig{Redis: c, RedisTimeout: time.Minute,
		DataDir: filepath.Join(t.TempDir(), "none"), Dir: filepath.Join(t.TempDir(), "backups")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(context.Background(), redistest.Prefix(t)+":k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	m, err := bk.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Redis == nil || len(m.Redis.Nodes) != 1 || m.Redis.Nodes[0].Status != "ok" || m.Redis.Nodes[0].LastSave.Before(start.Truncate(time.Second)) || m.Redis.Nodes[0].RDBFile == "" {
		t.Fatalf("redis save: %+v", m.Redis)
	}
	if m.Dir != "" || len(m.Files) != 0 {
		t.Errorf("a backup of a missing data directory wrote %s with %v", m.Dir, m.Files)
	}
	if _, err := os.Stat(m.Redis.Nodes[0].RDBFile); err != nil {
		t.Errorf("the RDB file the save reports: %v", err)
	}
	if _, err := ops.NewBackup(ops.BackupConfig{}); err == nil {
		t.Error("NewBackup with nothing to back up succeeded")
	}
	if err := bk.Process(context.Background(), &worker.Job{ID: "b1", TenantID: "tenant-a"}); err == nil || !retry.IsNoRetry(err) {
		t.Errorf("a backup job with a tenant: %v, want a failure without retry", err)
	}
}
