package sqlitebroker

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/schedstore"
)

// TestMigrationMovesRunsAndSchedulesIntoDocuments builds a store of schema
// version 5 (runs and schedules in their own tables), opens it, and checks
// that package workflow's and package schedule's stores read everything
// back from documents: a running run carries on to success, a finished run
// keeps its outputs and is removed by retention, an idempotency key still
// maps to its run, and a schedule keeps its claim state.
func TestMigrationMovesRunsAndSchedulesIntoDocuments(t *testing.T) {
	const job = `{"id":"%s","type":"t","max_attempts":2}`
	b := openOldStore(t, 5,
		`INSERT INTO workflow_runs (queue, id, workflow, tenant_id, idempotency_key, state, input, created_at, completions)
			VALUES ('q', 'live', 'w', 't1', 'key-live', 'running', '{"n":1}', 1000, 1)`,
		fmt.Sprintf(`INSERT INTO workflow_steps (queue, run_id, position, name, job, state, attempts, output, completed_seq)
			VALUES ('q', 'live', 0, 'A', '%s', 'completed', 1, CAST('{"a":1}' AS BLOB), 1)`, fmt.Sprintf(job, "live-A")),
		fmt.Sprintf(`INSERT INTO workflow_steps (queue, run_id, position, name, depends_on, job, state)
			VALUES ('q', 'live', 1, 'B', '["A"]', '%s', 'pending')`, fmt.Sprintf(job, "live-B")),
		`INSERT INTO jobs (id, queue, type, priority, max_attempts, state, created_at, run_at)
			VALUES ('live-B', 'q', 't', 0, 2, 'pending', 1000, 1000)`,
		`INSERT INTO workflow_runs (queue, id, workflow, state, created_at, finished_at, completions)
			VALUES ('q', 'done', 'w', 'succeeded', 900, 950, 1)`,
		fmt.Sprintf(`INSERT INTO workflow_steps (queue, run_id, position, name, job, state, attempts, output, completed_seq)
			VALUES ('q', 'done', 0, 'A', '%s', 'completed', 1, CAST('{"d":2}' AS BLOB), 1)`, fmt.Sprintf(job, "done-A")),
		`INSERT INTO schedules (name, queue, def, timing, version, paused, created_at, updated_at, since, last_tick)
			VALUES ('nightly', 'reports', '{"name":"nightly","spec":"@daily","job":{"ID":"","Queue":"reports","Type":"r","MaxAttempts":3}}',
				'x', 3, 1, 100, 200, 150, 86400000)`)
	ctx := context.Background()
	runs, err := runstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	done, err := runs.WorkflowRunGet(ctx, "q", "done")
	if err != nil || done.State != broker.WorkflowSucceeded || string(done.Step("A").Output) != `{"d":2}` ||
		!done.FinishedAt.Equal(time.UnixMilli(950)) {
		t.Fatalf("finished run after the migration: %+v, %v", done, err)
	}
	again, created, err := runs.WorkflowRunCreate(ctx, &broker.WorkflowRunCreateParams{ID: "other", Queue: "q", Workflow: "w",
		IdempotencyKey: "key-live", Steps: []broker.WorkflowStepDef{{Name: "A", Job: broker.WorkflowJob{ID: "other-A", Type: "t", MaxAttempts: 1}}}})
	if err != nil || created || again.ID != "live" {
		t.Fatalf("create with the migrated idempotency key: run %+v created %v, %v; want run live", again, created, err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != 1 || jobs[0].ID != "live-B" {
		t.Fatalf("fetch the migrated run's pending step: %v, %v", jobs, err)
	}
	if err := runs.WorkflowJobComplete(ctx, &broker.WorkflowJobCompleteParams{Run: "live", JobCompleteParams: broker.JobCompleteParams{
		JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: "live-B", Token: jobs[0].LeaseToken}, Result: json.RawMessage(`{"b":2}`)}}); err != nil {
		t.Fatal(err)
	}
	live, err := runs.WorkflowRunGet(ctx, "q", "live")
	if err != nil || live.State != broker.WorkflowSucceeded || live.Step("B").CompletedSeq != 2 || string(live.Step("A").Output) != `{"a":1}` ||
		string(live.Input) != `{"n":1}` || live.TenantID != "t1" {
		t.Fatalf("migrated running run after its last step: %+v, %v", live, err)
	}
	n, err := runs.WorkflowRunMaintain(ctx, &broker.WorkflowRunMaintainParams{Queue: "q", FinishedMaxCount: 1})
	if err != nil || n != 1 {
		t.Fatalf("retention keeping 1 of 2 finished runs removed %d, %v; want 1 (the migrated finished run)", n, err)
	}
	if _, err := runs.WorkflowRunGet(ctx, "q", "done"); err == nil {
		t.Fatal("the oldest finished run survived retention")
	}

	scheds, err := schedstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scheds.ScheduleGet(ctx, "nightly")
	if err != nil || sc.Spec != "@daily" || sc.Job.Queue != "reports" || !sc.Paused || sc.Version != 3 ||
		!sc.LastTick.Equal(time.UnixMilli(86400000)) || !sc.Since.Equal(time.UnixMilli(150)) || !sc.CreatedAt.Equal(time.UnixMilli(100)) {
		t.Fatalf("migrated schedule: %+v, %v", sc, err)
	}
	l, err := scheds.ScheduleList(ctx)
	if err != nil || len(l.Schedules) != 1 || l.Schedules[0].Name != "nightly" {
		t.Fatalf("schedules listed after the migration: %+v, %v", l, err)
	}
}
