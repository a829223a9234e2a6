package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/prevrelease"
	"github.com/aibos/worker/internal/runstore"
)

// testdata/format-v4.db is a store written by the release before stored
// formats were versioned beyond the schema (schema version 4: commit
// c8c1d83), by its own code, not rebuilt by hand: seven jobs of queue
// "invoices" (one completed, four pending with priorities 1, 3, 0 and -5,
// one scheduled, one cancelled), a
// cron schedule "daily-reports" and a running two-step workflow run
// "run-1". Opening a copy must migrate it and read every one of them back.
func TestOpenStoreOfPreviousRelease(t *testing.T) {
	src, err := os.ReadFile("testdata/format-v4.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "worker.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	// The old release wrote the scheduled job due an hour after it wrote
	// the fixture; that hour has passed. Move it a day past now, so that
	// what the test checks does not depend on the date it runs.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE jobs SET run_at = ? WHERE id = 'scheduled'`, time.Now().Add(24*time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, Config{})
	if err != nil {
		t.Fatalf("open a store of the previous release: %v", err)
	}
	defer b.Close()
	ctx := context.Background()

	prevrelease.Check(t, b, "pending-p1 pending-p3 pending-p0 pending-neg")

	// The workflow run, read by the store package workflow uses.
	rs, err := runstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	run, err := rs.WorkflowRunGet(ctx, "workflows", "run-1")
	if err != nil {
		t.Fatalf("get run-1: %v", err)
	}
	input, _ := json.Marshal(run.Input)
	if run.State != broker.WorkflowRunning || run.TenantID != "tenant-a" || len(run.Steps) != 2 ||
		run.Steps[0].State != broker.StepPending || run.Steps[1].State != broker.StepWaiting || run.IdempotencyKey != "idem-1" {
		t.Fatalf("run-1 = %+v (input %s)", run, input)
	}
}
