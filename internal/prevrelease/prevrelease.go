// Package prevrelease checks, for the brokers' tests, that a store written
// by the previous release (the jobs and schedule its testdata fixtures
// hold, written by that release's own code) reads back as this release
// means it. Both brokers ship such a fixture; the expectations live here
// once.
package prevrelease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/schedstore"
)

// jobs are the fixture's jobs of queue "invoices" with their state, tenant
// and priority as this release reads them. pending-p0 and pending-neg were
// stored with 0 (the old default) and -5 (below it).
var jobs = map[string]struct {
	state    broker.State
	tenant   string
	priority int
}{
	"completed":   {broker.StateCompleted, "tenant-b", 4},
	"pending-p1":  {broker.StatePending, "tenant-a", 1},
	"pending-p3":  {broker.StatePending, "tenant-b", 3},
	"scheduled":   {broker.StateScheduled, "tenant-a", 2},
	"cancelled":   {broker.StateCancelled, "tenant-a", 2},
	"pending-p0":  {broker.StatePending, "tenant-a", broker.DefaultPriority},
	"pending-neg": {broker.StatePending, "tenant-a", broker.DefaultPriority + 5},
}

// Check reads every job of the fixture back (fields, state, priority,
// result, an empty attempt history), lists tenant-a's pending jobs through the tenant index, checks
// that a unique key an old pending job holds still holds, fetches the
// pending jobs and wants them in fetchOrder (ids separated by spaces), and
// reads the cron schedule "daily-reports" through package schedule's store.
// b has already migrated the data.
func Check(t testing.TB, b broker.Broker, fetchOrder string) {
	t.Helper()
	ctx := context.Background()
	for id, w := range jobs {
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: id, TenantID: w.tenant})
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if j.State != w.state || j.Priority != w.priority || j.Type != "invoice.processing" || j.CompanyID != "c1" ||
			j.MaxAttempts != 3 || j.UniqueKey != "u-"+id || j.Headers["h"] != "v" || string(j.Data) != `{"invoiceId":"`+id+`"}` {
			t.Errorf("job %s read back as %+v", id, j)
		}
		if len(j.Attempts) != 0 {
			t.Errorf("job %s, stored before attempts were kept, has an attempt history: %+v", id, j.Attempts)
		}
	}
	if j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "invoices", ID: "completed"}); err != nil || string(j.Result) != `{"ok":true}` {
		t.Errorf("completed job: %+v, %v; want its result {\"ok\":true}", j, err)
	}
	// The tenant index covers jobs written before it existed.
	page, err := b.JobList(ctx, &broker.JobListParams{Queue: "invoices", State: broker.StatePending, TenantID: "tenant-a"})
	if err != nil || len(page.Jobs) != 3 || page.Jobs[0].ID != "pending-p1" {
		t.Fatalf("tenant-a's pending jobs = %v, %v; want pending-p1, pending-p0, pending-neg", page, err)
	}
	_, err = b.JobInsert(ctx, &broker.JobInsertParams{ID: "again", Queue: "invoices", Type: "invoice.processing",
		MaxAttempts: 1, TenantID: "tenant-a", UniqueKey: "u-pending-p1"})
	var dup *broker.DuplicateError
	if !errors.As(err, &dup) {
		t.Errorf("insert with a unique key an old pending job holds: %v, want a duplicate", err)
	}
	got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "invoices", Limit: 10, LeaseDuration: time.Minute, WorkerID: "w"})
	var order []string
	for _, j := range got {
		order = append(order, j.ID)
	}
	if err != nil || strings.Join(order, " ") != fetchOrder {
		t.Errorf("old pending jobs fetched as %v (%v); want %s: 1 first, the old default as the default, below it last",
			order, err, fetchOrder)
	}
	ss, err := schedstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ss.ScheduleGet(ctx, "daily-reports")
	if err != nil || s.Spec != "0 2 * * *" || s.TimeZone != "Europe/Paris" || s.Job.Queue != "reports" || s.Job.TenantID != "all" {
		t.Fatalf("schedule daily-reports = %+v, %v", s, err)
	}
}
