package sqlitebroker

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aibos/worker/broker"
)

// TestRetentionCountsRunsFinishedBeforeMigration4: a store written before
// migration 0004 holds finished runs the triggers never saw; the migration
// counts them, so the count rule applies to them at once.
func TestRetentionCountsRunsFinishedBeforeMigration4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := scripts[:3]
	stmts = append(stmts, "PRAGMA user_version = 3", fmt.Sprintf("PRAGMA application_id = %d", applicationID))
	for i, st := range []string{"succeeded", "failed", "cancelled", "running"} {
		id := fmt.Sprintf("r%d", i)
		finished := fmt.Sprint(1000 + i)
		if st == "running" {
			finished = "NULL"
		}
		stmts = append(stmts,
			fmt.Sprintf(`INSERT INTO workflow_runs (queue, id, workflow, state, created_at, finished_at, idempotency_key)
				VALUES ('q', '%s', 'w', '%s', %d, %s, 'key-%s')`, id, st, 1000+i, finished, id),
			fmt.Sprintf(`INSERT INTO workflow_steps (queue, run_id, position, name, job, state)
				VALUES ('q', '%s', 0, 'S', '{"id":"%s-S","type":"t","max_attempts":1}', 'completed')`, id, id))
	}
	for _, st := range stmts {
		if _, err := db.Exec(st); err != nil {
			t.Fatalf("build a version 3 store: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	n, err := b.WorkflowRunMaintain(ctx, &broker.WorkflowRunMaintainParams{Queue: "q", FinishedMaxCount: 1})
	if err != nil || n != 2 {
		t.Fatalf("keeping 1 of 3 runs finished before the migration removed %d (%v), want 2", n, err)
	}
	for id, want := range map[string]bool{"r0": false, "r1": false, "r2": true, "r3": true} {
		_, err := b.WorkflowRunGet(ctx, "q", id)
		if (err == nil) != want {
			t.Errorf("run %s after retention: %v, want kept %v", id, err, want)
		}
	}
	if n, err := b.WorkflowRunMaintain(ctx, &broker.WorkflowRunMaintainParams{Queue: "q", FinishedMaxCount: 1}); err != nil || n != 0 {
		t.Fatalf("second pass removed %d (%v), want 0: the count follows removals", n, err)
	}
}
