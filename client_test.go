package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

func TestClientRejectsBadInputAndWritesNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c, err := worker.NewClient(b, worker.ClientConfig{Queues: []string{"invoices"}, MaxPayloadBytes: 1024})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		cases := []struct {
			name, queue string
			spec        worker.JobSpec
			want        string // in the message
		}{
			{"empty queue", "", worker.JobSpec{Type: "x"}, "queue name is empty"},
			{"unknown queue", "payroll", worker.JobSpec{Type: "x"}, `add to queue "payroll": invalid job: unknown queue (configured: [invoices])`},
			{"empty type", "invoices", worker.JobSpec{}, "type is empty"},
			{"negative delay", "invoices", worker.JobSpec{Type: "x", Delay: -time.Second}, "delay: -1s is negative"},
			{"invalid json", "invoices", worker.JobSpec{Type: "x", Data: json.RawMessage(`{"a":`)}, "not valid JSON"},
			{"unencodable data", "invoices", worker.JobSpec{Type: "x", Data: func() {}}, "cannot encode payload as JSON"},
			{"oversized payload", "invoices", worker.JobSpec{Type: "x", Data: strings.Repeat("a", 2000)}, "the limit is 1024"},
			{"priority out of range", "invoices", worker.JobSpec{Type: "x", Priority: 5000}, "priority: 5000 is outside"},
			{"negative attempts", "invoices", worker.JobSpec{Type: "x", MaxAttempts: -1}, "max_attempts"},
			{"negative ttl", "invoices", worker.JobSpec{Type: "x", TTL: -time.Second}, "ttl"},
		}
		for _, tc := range cases {
			_, err := c.Add(ctx, tc.queue, tc.spec)
			if !errors.Is(err, worker.ErrInvalidJob) {
				t.Errorf("%s: err = %v, want ErrInvalidJob", tc.name, err)
				continue
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: message %q does not say %q", tc.name, err, tc.want)
			}
		}
		// Bulk: one bad job in the middle rejects all and names its index.
		specs := []worker.JobSpec{{Type: "a"}, {Type: "b"}, {Type: "", Data: 1}, {Type: "d"}}
		_, err = c.AddMany(ctx, "invoices", specs)
		var ie *worker.InvalidError
		if !errors.As(err, &ie) || ie.Index != 2 {
			t.Errorf("bulk with a bad job at 2: err = %v, want an InvalidError at index 2", err)
		}
		s, err := c.Stats(ctx, "invoices")
		if err != nil {
			t.Fatal(err)
		}
		if s.Unfinished()+s.Completed+s.Dead != 0 {
			t.Fatalf("rejected adds wrote jobs: %+v", *s)
		}
		// Bad references.
		if _, err := c.Get(ctx, "invoices", ""); !errors.Is(err, worker.ErrInvalidJob) {
			t.Errorf("get with empty id: %v", err)
		}
		if _, err := c.Get(ctx, "invoices", "nope"); !errors.Is(err, worker.ErrNotFound) {
			t.Errorf("get unknown id: %v", err)
		}
		if _, err := c.List(ctx, worker.ListParams{Queue: "invoices", State: "sleeping"}); !errors.Is(err, worker.ErrInvalidJob) {
			t.Errorf("list with unknown state: %v", err)
		}
	})
}

func TestClientConfigErrors(t *testing.T) {
	b := testbroker.SQLite(t)
	for _, cfg := range []worker.ClientConfig{
		{DefaultMaxAttempts: -2},
		{DefaultTTL: -time.Second},
		{MaxQueueLength: -1},
		{MaxPayloadBytes: broker.MaxDataBytes + 1},
		{Queues: []string{"bad queue"}},
	} {
		if _, err := worker.NewClient(b, cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted a bad config", cfg)
		}
	}
	if _, err := worker.NewClient(nil, worker.ClientConfig{}); err == nil {
		t.Error("NewClient(nil) accepted")
	}
}

func TestClientDuplicateQueueFullAndAdmin(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c, err := worker.NewClient(b, worker.ClientConfig{MaxQueueLength: 3})
		if err != nil {
			t.Fatal(err)
		}
		first := add(t, c, "bills", worker.JobSpec{Type: "bill.sync", UniqueKey: "bill-42", TenantID: "t1"})
		_, err = c.Add(ctx, "bills", worker.JobSpec{Type: "bill.sync", UniqueKey: "bill-42", TenantID: "t1"})
		var de *worker.DuplicateError
		if !errors.As(err, &de) || de.ExistingID != first.ID {
			t.Fatalf("duplicate unique key: err = %v, want DuplicateError naming %s", err, first.ID)
		}
		add(t, c, "bills", worker.JobSpec{Type: "bill.sync", TenantID: "t2"})
		add(t, c, "bills", worker.JobSpec{Type: "bill.other", TenantID: "t1", Delay: time.Hour})
		if _, err := c.Add(ctx, "bills", worker.JobSpec{Type: "bill.sync"}); !errors.Is(err, worker.ErrQueueFull) {
			t.Fatalf("fourth job in a queue of 3: err = %v, want ErrQueueFull", err)
		}
		if n, err := c.Length(ctx, "bills"); err != nil || n != 3 {
			t.Fatalf("length = %d, %v; want 3", n, err)
		}
		page, err := c.List(ctx, worker.ListParams{Queue: "bills", State: worker.StatePending, TenantID: "t1"})
		if err != nil || len(page.Jobs) != 1 || page.Jobs[0].ID != first.ID {
			t.Fatalf("list pending of t1 = %+v, %v", page, err)
		}
		if _, err := c.Cancel(ctx, "bills", first.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Retry(ctx, "bills", first.ID); err != nil {
			t.Fatalf("retry a cancelled job: %v", err)
		}
		if err := c.Pause(ctx, "bills"); err != nil {
			t.Fatal(err)
		}
		if s, _ := c.Stats(ctx, "bills"); !s.Paused {
			t.Fatal("queue not paused")
		}
		if err := c.Resume(ctx, "bills"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Cancel(ctx, "bills", first.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, "bills", first.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, "bills", first.ID); !errors.Is(err, worker.ErrNotFound) {
			t.Fatalf("deleted job still there: %v", err)
		}
		qs, err := c.Queues(ctx)
		if err != nil || len(qs) != 1 || qs[0] != "bills" {
			t.Fatalf("queues = %v, %v", qs, err)
		}
	})
}

func TestMiddlewareWrapsProcessors(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		var mu sync.Mutex
		var order []string
		var seen atomic.Int32
		mw := func(name string) worker.Middleware {
			return func(next worker.Processor) worker.Processor {
				return worker.ProcessorFunc(func(ctx context.Context, j *worker.Job) error {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
					return next.Process(ctx, j)
				})
			}
		}
		m.Use(mw("outer"), mw("inner"))
		_ = m.HandleFunc("x", func(ctx context.Context, j *worker.Job) error { seen.Add(1); return nil })
		j := add(t, c, "default", worker.JobSpec{Type: "x"})
		startManager(t, m)
		waitState(t, c, "default", j.ID, worker.StateCompleted)
		mu.Lock()
		defer mu.Unlock()
		if seen.Load() != 1 || len(order) != 2 || order[0] != "outer" || order[1] != "inner" {
			t.Fatalf("middleware order = %v, processor calls = %d", order, seen.Load())
		}
	})
}

// TestClientTenantView: a client scoped to a tenant gives its jobs the
// tenant, refuses jobs of another, and sees another tenant's job as absent
// in every admin call; List and Stats show only its jobs.
func TestClientTenantView(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Tenant(""); !errors.Is(err, worker.ErrInvalidJob) {
			t.Fatalf("Tenant(\"\"): %v, want ErrInvalidJob", err)
		}
		ta, err := c.Tenant("acme")
		if err != nil {
			t.Fatal(err)
		}
		tb, _ := c.Tenant("globex")
		if ta.TenantID() != "acme" || c.TenantID() != "" {
			t.Fatalf("TenantID: scoped %q, unscoped %q", ta.TenantID(), c.TenantID())
		}
		ctx := context.Background()
		mine, err := ta.Add(ctx, "q", worker.JobSpec{Type: "x"})
		if err != nil || mine.TenantID != "acme" {
			t.Fatalf("scoped Add: %+v, %v; want a job of tenant acme", mine, err)
		}
		if _, err := ta.Add(ctx, "q", worker.JobSpec{Type: "x", TenantID: "globex"}); !errors.Is(err, worker.ErrInvalidJob) || !strings.Contains(err.Error(), "tenant_id") {
			t.Fatalf("scoped Add of another tenant's job: %v; want ErrInvalidJob naming tenant_id", err)
		}
		theirs, err := tb.Add(ctx, "q", worker.JobSpec{Type: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ta.Get(ctx, "q", theirs.ID); !errors.Is(err, worker.ErrNotFound) {
			t.Errorf("scoped Get of another tenant's job: %v, want ErrNotFound", err)
		}
		if _, err := ta.Cancel(ctx, "q", theirs.ID); !errors.Is(err, worker.ErrNotFound) {
			t.Errorf("scoped Cancel of another tenant's job: %v, want ErrNotFound", err)
		}
		if _, err := ta.Retry(ctx, "q", theirs.ID); !errors.Is(err, worker.ErrNotFound) {
			t.Errorf("scoped Retry of another tenant's job: %v, want ErrNotFound", err)
		}
		if err := ta.Delete(ctx, "q", theirs.ID); !errors.Is(err, worker.ErrNotFound) {
			t.Errorf("scoped Delete of another tenant's job: %v, want ErrNotFound", err)
		}
		if j, err := c.Get(ctx, "q", theirs.ID); err != nil || j.State != worker.StatePending {
			t.Errorf("another tenant's job after the scoped calls: %+v, %v; want it pending, untouched", j, err)
		}
		res, err := ta.List(ctx, worker.ListParams{Queue: "q", State: worker.StatePending})
		if err != nil || len(res.Jobs) != 1 || res.Jobs[0].ID != mine.ID {
			t.Errorf("scoped List: %+v, %v; want only its own job", res, err)
		}
		if _, err := ta.List(ctx, worker.ListParams{Queue: "q", State: worker.StatePending, TenantID: "globex"}); !errors.Is(err, worker.ErrInvalidJob) {
			t.Errorf("scoped List naming another tenant: %v, want ErrInvalidJob", err)
		}
		if st, err := ta.Stats(ctx, "q"); err != nil || st.Pending != 1 {
			t.Errorf("scoped Stats: %+v, %v; want 1 pending", st, err)
		}
		if st, err := c.Stats(ctx, "q"); err != nil || st.Pending != 2 {
			t.Errorf("unscoped Stats: %+v, %v; want 2 pending", st, err)
		}
		if err := ta.Delete(ctx, "q", mine.ID); err != nil {
			t.Errorf("scoped Delete of its own job: %v", err)
		}
	})
}
