package redisbroker_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/schedstore"
)

// testdata/format-0.json holds every key (as DUMP output) that the release
// before stored formats were versioned (commit c8c1d83) wrote, by its own
// code, under the prefix "prev": eight jobs of queue "invoices" (one
// completed, five pending with priorities 1, 3, 0, -5 and a plain job with
// no tenant, one scheduled, one cancelled) and a cron schedule. The test
// restores them under its own prefix; the first Ping migrates them, and
// every job and the schedule must read back as the new release means them.
func TestOpenDataOfPreviousRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	raw, err := os.ReadFile("testdata/format-0.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Key, Dump string }
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		d, err := hex.DecodeString(e.Dump)
		if err != nil {
			t.Fatal(err)
		}
		key := prefix + strings.TrimPrefix(e.Key, "prev")
		if err := client.Restore(ctx, key, 0, string(d)).Err(); err != nil {
			t.Fatalf("restore %s: %v", key, err)
		}
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping (migrates the old data): %v", err)
	}
	if v, err := client.Get(ctx, prefix+":format").Int(); err != nil || v != redisbroker.FormatVersion {
		t.Fatalf("stored format after migration = %d, %v; want %d", v, err, redisbroker.FormatVersion)
	}

	want := map[string]struct {
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
	// The tenant index was built for data written before it existed.
	page, err := b.JobList(ctx, &broker.JobListParams{Queue: "invoices", State: broker.StatePending, TenantID: "tenant-a"})
	if err != nil || len(page.Jobs) != 3 {
		t.Fatalf("tenant-a's pending jobs = %v, %v; want 3", page, err)
	}
	// A unique key an old unfinished job holds still holds.
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
	if err != nil || strings.Join(order, " ") != "pending-p1 pending-p3 pending-p0 plain pending-neg" {
		t.Errorf("old pending jobs fetched as %v (%v); want pending-p1 pending-p3 pending-p0 plain pending-neg", order, err)
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
