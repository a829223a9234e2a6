package sqlitebroker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
)

// TestFairFetchUsesIndex checks with EXPLAIN QUERY PLAN that a fair fetch
// reads its jobs in fair order from the jobs_fair index: a range of the
// queue's pending tagged jobs, already in (priority, tag, seq) order, with
// no scan of the queue's jobs and no sort of them.
func TestFairFetchUsesIndex(t *testing.T) {
	t.Parallel()
	b, err := Open(filepath.Join(t.TempDir(), "jobs.db"), Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"candidates": {sqlFairCandidates, []any{"q", 10}},
		"lease":      {sqlLeaseFair, []any{1, 2, 3, "w", "q", 10}},
	} {
		got := queryPlan(t, b, q.sql, q.args...)
		if !strings.Contains(got, "INDEX jobs_fair (queue=?") || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("fair fetch's %s: plan %q; want a search of index jobs_fair with no sort", name, got)
		}
	}
}

// TestMigrationKeepsFairClock builds a store of schema version 16, whose
// fair queue's clock stands at tag 5000 in table fair_clock (at priority
// 3, broker.DefaultPriority), opens it
// (migration 0017 moves the clock into counters) and checks that the clock
// still places a newcomer: tenant t-b, arriving with two turns of jobs,
// gets one turn ahead of backlogged tenant t-a's next job (tag 5000), not
// two, as it would from a clock restarted at zero.
func TestMigrationKeepsFairClock(t *testing.T) {
	t.Parallel()
	b := openOldStore(t, 16,
		`INSERT INTO queues (name, fair) VALUES ('q', 1)`,
		`INSERT INTO jobs (id, queue, type, priority, max_attempts, state, created_at, run_at, tenant_id, fair_tag)
			VALUES ('a-1', 'q', 't', 3, 1, 'pending', 1000, 1000, 't-a', 5000),
				('a-2', 'q', 't', 3, 1, 'pending', 1000, 1000, 't-a', 6000)`,
		`INSERT INTO fair_tags (queue, priority, tenant, next, used) VALUES ('q', 3, 't-a', 7000, 0)`,
		`INSERT INTO fair_clock (queue, priority, v) VALUES ('q', 3, 5000)`)
	ctx := context.Background()
	const k = broker.FairQuantum
	ps := make([]*broker.JobInsertParams, 2*k)
	for i := range ps {
		ps[i] = &broker.JobInsertParams{ID: fmt.Sprintf("b-%03d", i), Queue: "q", Type: "t", MaxAttempts: 1, TenantID: "t-b"}
	}
	if _, err := b.JobInsertMany(ctx, ps); err != nil {
		t.Fatalf("insert tenant t-b's jobs: %v", err)
	}
	var order []string
	for range k + 1 {
		got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w"})
		if err != nil || len(got) != 1 {
			t.Fatalf("fetch one job: %d jobs, %v", len(got), err)
		}
		order = append(order, got[0].ID)
	}
	if order[k] != "a-1" {
		t.Errorf("after the migration, job %d fetched was %s, want a-1 (t-b has one turn of %d jobs ahead of it, the clock at 5000); order %v",
			k+1, order[k], k, order)
	}
}
