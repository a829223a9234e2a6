package health_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/internal/redistest"
)

// TestQueueLengthCountsWaitingJobs: QueueLength counts what its doc says,
// pending plus scheduled jobs, and nothing else. The queue holds 2 pending,
// 1 scheduled, 1 active, 1 completed and 1 dead job: 3 are waiting.
func TestQueueLengthCountsWaitingJobs(t *testing.T) {
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	const q = "invoices"
	insert := func(id string, delay time.Duration) {
		t.Helper()
		p := &broker.JobInsertParams{ID: id, Queue: q, Type: "x", Data: json.RawMessage(`{}`), MaxAttempts: 3, Delay: delay}
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatalf("insert %s: %v", id, err)
		}
	}
	insert("active", 0)
	insert("completed", 0)
	insert("dead", 0)
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 3, LeaseDuration: time.Minute, WorkerID: "test"})
	if err != nil || len(jobs) != 3 {
		t.Fatalf("fetch 3 jobs: %d, %v", len(jobs), err)
	}
	for _, j := range jobs {
		lp := broker.JobLeaseParams{Queue: q, ID: j.ID, Token: j.LeaseToken}
		switch j.ID {
		case "completed":
			if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lp}}); err != nil || errs[0] != nil {
				t.Fatalf("complete: %v %v", errs, err)
			}
		case "dead":
			if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "bad", Discard: true}); err != nil {
				t.Fatalf("fail: %v", err)
			}
		}
	}
	insert("pending-1", 0)
	insert("pending-2", 0)
	insert("scheduled", time.Hour)
	// Read through a Client: the broker's read calls are about to take
	// params structs (tenant scope), the Client's stay.
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 2 || st.Scheduled != 1 || st.Active != 1 || st.Completed != 1 || st.Dead != 1 {
		t.Fatalf("setup: stats %+v, want 2 pending, 1 scheduled, 1 active, 1 completed, 1 dead", *st)
	}

	for _, c := range []struct {
		threshold int64
		want      health.Status
	}{
		{2, health.Degraded}, // 3 waiting > 2: a warning, never unhealthy
		{3, health.Healthy},  // 3 waiting, not over 3
	} {
		rep := health.New(health.QueueLength(b, q, c.threshold)).Check(ctx)
		r := rep.Checks[0]
		if r.Status != c.want || rep.Status != c.want {
			t.Errorf("QueueLength threshold %d: %s (%s), report %s, want both %s", c.threshold, r.Status, r.Error, rep.Status, c.want)
		}
		if c.want == health.Degraded && !strings.Contains(r.Error, "holds 3 waiting jobs") {
			t.Errorf("QueueLength threshold %d: error %q, want it to name the 3 waiting jobs", c.threshold, r.Error)
		}
	}
}
