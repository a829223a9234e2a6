package sqlitebroker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// TestLeaseTokensSurviveRestoredBackup restores the database from a copy
// taken before ten jobs were leased and leases them again: the leases held
// before the restore must not complete the jobs, the new ones must.
func TestLeaseTokensSurviveRestoredBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.db")
	backup := filepath.Join(dir, "backup.db")
	open := func() *sqlitebroker.Broker {
		t.Helper()
		b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return b
	}
	b := open()
	for i := range 10 {
		p := &broker.JobInsertParams{ID: fmt.Sprintf("j%d", i), Queue: "q", Type: "t", MaxAttempts: 3}
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, path, backup)

	leaseAll := func(b *sqlitebroker.Broker) map[string]int64 {
		t.Helper()
		jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 10, LeaseDuration: time.Minute})
		if err != nil || len(jobs) != 10 {
			t.Fatalf("fetch: %d jobs, %v; want 10", len(jobs), err)
		}
		tokens := map[string]int64{}
		for _, j := range jobs {
			tokens[j.ID] = j.LeaseToken
		}
		return tokens
	}
	b = open()
	stale := leaseAll(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, backup, path) // the restore: the leases above never happened
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	b = open()
	defer b.Close()
	current := leaseAll(b)

	complete := func(tokens map[string]int64) []error {
		var ps []*broker.JobCompleteParams
		for id, tk := range tokens {
			ps = append(ps, &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: id, Token: tk}})
		}
		errs, err := b.JobComplete(ctx, ps)
		if err != nil {
			t.Fatalf("complete: %v", err)
		}
		return errs
	}
	for i, err := range complete(stale) {
		if !errors.Is(err, broker.ErrLeaseLost) {
			t.Errorf("stale completion %d: %v, want lease lost", i, err)
		}
	}
	for i, err := range complete(current) {
		if err != nil {
			t.Errorf("current completion %d: %v, want accepted", i, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
