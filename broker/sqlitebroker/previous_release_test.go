package sqlitebroker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/schedstore"
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
	b, err := Open(path, Config{})
	if err != nil {
		t.Fatalf("open a store of the previous release: %v", err)
	}
	defer b.Close()
	ctx := context.Background()

	want := map[string]struct {
		state    broker.State
		tenant   string
		priority int
	}{
		"completed":  {broker.StateCompleted, "tenant-b", 4},
		"pending-p1": {broker.StatePending, "tenant-a", 1},
		"pending-p3": {broker.StatePending, "tenant-b", 3},
		"scheduled":  {broker.StateScheduled, "tenant-a", 2},
		"cancelled":  {broker.StateCancelled, "tenant-a", 2},
		// Stored as 0 (the old default) and -5 (below it).
		"pending-p0":  {broker.StatePending, "tenant-a", broker.DefaultPriority},
		"pending-neg": {broker.StatePending, "tenant-a", broker.DefaultPriority + 5},
	}
	for id, w := range want {
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: id, TenantID: w.tenant})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if j.State != w.state || j.Priority != w.priority || j.Type != "invoice.processing" || j.CompanyID != "c1" ||
			j.MaxAttempts != 3 || j.UniqueKey != "u-"+id || j.Headers["h"] != "v" || string(j.Data) != `{"invoiceId":"`+id+`"}` {
			t.Errorf("job %s read back as %+v", id, j)
		}
	}
	if j, _ := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: "completed"}); string(j.Result) != `{"ok":true}` {
		t.Errorf("completed job's result = %s", j.Result)
	}
	// The tenant index covers rows written before it existed.
	page, err := b.JobList(ctx, &broker.JobListParams{Queue: "invoices", State: broker.StatePending, TenantID: "tenant-a"})
	if err != nil || len(page.Jobs) != 3 || page.Jobs[0].ID != "pending-p1" {
		t.Fatalf("tenant-a's pending jobs = %v, %v; want pending-p1, pending-p0, pending-neg", page, err)
	}
	// A unique key held by an unfinished job of the old store still holds.
	_, err = b.JobInsert(ctx, &broker.JobInsertParams{ID: "again", Queue: "invoices", Type: "invoice.processing",
		MaxAttempts: 1, TenantID: "tenant-a", UniqueKey: "u-pending-p1"})
	if !isDuplicate(err) {
		t.Errorf("insert with a unique key an old pending job holds: %v, want a duplicate", err)
	}
	// The pending jobs are fetched, in the order priority numbers mean now.
	got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "invoices", Limit: 10, LeaseDuration: time.Minute, WorkerID: "w"})
	var order []string
	for _, j := range got {
		order = append(order, j.ID)
	}
	if err != nil || strings.Join(order, " ") != "pending-p1 pending-p3 pending-p0 pending-neg" {
		t.Errorf("old pending jobs fetched as %v (%v); want pending-p1 pending-p3 pending-p0 pending-neg:"+
			" 1 first, the old default as the default, below it last", order, err)
	}

	// The schedule and the workflow run, read by the packages that own them.
	ss, err := schedstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.ScheduleGet(ctx, "daily-reports")
	if err != nil || s.Spec != "0 2 * * *" || s.TimeZone != "Europe/Paris" || s.Job.Queue != "reports" || s.Job.TenantID != "all" {
		t.Fatalf("schedule daily-reports = %+v, %v", s, err)
	}
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

func isDuplicate(err error) bool {
	var d *broker.DuplicateError
	return errors.As(err, &d)
}
