package acknowledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// TestStopFlushesWithPerJobOutcomes: every completion queued before Stop is
// written, and each Done gets its own job's outcome: nil for a live lease,
// ErrLeaseLost for a stale token (that job is left active).
func TestStopFlushesWithPerJobOutcomes(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		const n = 300 // more than one batch
		for i := range n {
			p := &broker.JobInsertParams{ID: fmt.Sprintf("job-%03d", i), Queue: "q", Type: "t", Data: json.RawMessage(`{}`), MaxAttempts: 1}
			if _, err := b.JobInsert(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		var jobs []*broker.Job
		for len(jobs) < n {
			got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 100, LeaseDuration: time.Minute, WorkerID: "w"})
			if err != nil || len(got) == 0 {
				t.Fatalf("fetch: %d jobs, %v", len(got), err)
			}
			jobs = append(jobs, got...)
		}
		c, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		a := acknowledger.New(b, 16)
		a.Start()
		outcomes := make([]error, n)
		called := make([]int, n)
		for i, j := range jobs {
			token := j.LeaseToken
			if i == 7 {
				token++ // stale
			}
			a.Add(acknowledger.Request{
				Params: &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: j.ID, Token: token}},
				Done:   acknowledger.DoneFunc(func(err error) { outcomes[i] = err; called[i]++ }),
			})
		}
		a.Stop()
		for i, j := range jobs {
			if called[i] != 1 {
				t.Fatalf("job %d: Done called %d times, want once", i, called[i])
			}
			want := broker.StateCompleted
			if i == 7 {
				want = broker.StateActive
				if !errors.Is(outcomes[i], broker.ErrLeaseLost) {
					t.Errorf("stale completion of job %d: %v, want ErrLeaseLost", i, outcomes[i])
				}
			} else if outcomes[i] != nil {
				t.Errorf("completion of job %d: %v", i, outcomes[i])
			}
			got, err := c.Get(ctx, "q", j.ID)
			if err != nil || got.State != want {
				t.Fatalf("job %d after Stop: %v, %v; want %s", i, got, err, want)
			}
		}
	})
}

// leased inserts n jobs into queue and leases them.
func leased(t *testing.T, b broker.Broker, queue string, n int) []*broker.Job {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		p := &broker.JobInsertParams{ID: fmt.Sprintf("%s-%03d", queue, i), Queue: queue, Type: "t", Data: json.RawMessage(`{}`), MaxAttempts: 1}
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: queue, Limit: n, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != n {
		t.Fatalf("fetch: %d jobs, %v; want %d", len(jobs), err, n)
	}
	return jobs
}

// outcome records the outcome a Done is told.
type outcome struct {
	once  chan struct{}
	err   error
	calls atomic.Int32
}

func newOutcome() *outcome { return &outcome{once: make(chan struct{})} }

func (o *outcome) Acked(err error) {
	if o.calls.Add(1) == 1 {
		o.err = err
		close(o.once)
	}
}

// told reports whether Done was told, and the outcome.
func (o *outcome) told() (bool, error) {
	select {
	case <-o.once:
		return true, o.err
	default:
		return false, nil
	}
}

// wait waits until Done is told, at most 5 s.
func (o *outcome) wait(t *testing.T, what string) error {
	t.Helper()
	select {
	case <-o.once:
		return o.err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the completion was not written within 5 s", what)
		return nil
	}
}

func request(j *broker.Job, token int64, o *outcome) acknowledger.Request {
	return acknowledger.Request{Params: &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: token}}, Done: o}
}

// TestFetchTakesHeldCompletions: while a fetch is coming (Expect), queued
// completions wait for it, and Fetch sends them with its lease in one
// call: once Settle returns, each Done has its own outcome (a stale
// token's ErrLeaseLost too), and the fetch has leased the queue's next
// job. Redis only: the capability is the Redis broker's.
func TestFetchTakesHeldCompletions(t *testing.T) {
	b := testbroker.Redis(t)
	if _, ok := b.(broker.CompleteFetcher); !ok {
		t.Fatalf("%T does not implement broker.CompleteFetcher", b)
	}
	ctx := context.Background()
	jobs := leased(t, b, "q", 2)
	if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "next", Queue: "q", Type: "t", Data: json.RawMessage(`{}`), MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	a := acknowledger.New(b, 16)
	a.Start()
	defer a.Stop()
	a.Expect(acknowledger.FetchSoon)
	ok, stale := newOutcome(), newOutcome()
	a.Add(request(jobs[0], jobs[0].LeaseToken, ok))
	a.Add(request(jobs[1], jobs[1].LeaseToken+1, stale))
	got, err := a.Fetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 5, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(got) != 1 || got[0].ID != "next" {
		t.Fatalf("Fetch: %d jobs, %v; want job next", len(got), err)
	}
	a.Settle()
	if told, err := ok.told(); !told || err != nil {
		t.Errorf("live completion after Fetch and Settle: told %v, %v; want told nil", told, err)
	}
	if told, err := stale.told(); !told || !errors.Is(err, broker.ErrLeaseLost) {
		t.Errorf("stale completion after Fetch and Settle: told %v, %v; want told ErrLeaseLost", told, err)
	}
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []broker.State{broker.StateCompleted, broker.StateActive} {
		if j, err := c.Get(ctx, "q", jobs[i].ID); err != nil || j.State != want {
			t.Errorf("job %s: %v, %v; want %s", jobs[i].ID, j, err, want)
		}
	}
	if ok.calls.Load() != 1 || stale.calls.Load() != 1 {
		t.Errorf("Done calls: %d and %d, want one each", ok.calls.Load(), stale.calls.Load())
	}
}

// TestNoFetchComingWritesAtOnce: a completion is written without a fetch
// whenever none is coming: queued while no fetch is expected, when the
// expected fetch is called off, when no slot freed for it within HoldMax,
// and at Stop.
func TestNoFetchComingWritesAtOnce(t *testing.T) {
	b := testbroker.Redis(t)
	jobs := leased(t, b, "q", 4)
	a := acknowledger.New(b, 16)
	a.Start()
	stopped := false
	defer func() {
		if !stopped {
			a.Stop()
		}
	}()
	o := newOutcome()
	a.Add(request(jobs[0], jobs[0].LeaseToken, o))
	if err := o.wait(t, "not held"); err != nil {
		t.Fatalf("not held: %v", err)
	}
	a.Expect(acknowledger.FetchSoon)
	o = newOutcome()
	a.Add(request(jobs[1], jobs[1].LeaseToken, o))
	a.Expect(acknowledger.FetchNone)
	if err := o.wait(t, "hold ended"); err != nil {
		t.Fatalf("hold ended: %v", err)
	}
	a.Expect(acknowledger.FetchAfterSlot)
	o = newOutcome()
	a.Add(request(jobs[2], jobs[2].LeaseToken, o))
	if err := o.wait(t, "no slot freed within HoldMax"); err != nil {
		t.Fatalf("no slot freed within HoldMax: %v", err)
	}
	a.Expect(acknowledger.FetchSoon)
	o = newOutcome()
	a.Add(request(jobs[3], jobs[3].LeaseToken, o))
	a.Stop()
	stopped = true
	if told, err := o.told(); !told || err != nil {
		t.Fatalf("held at Stop: told %v, %v; want written by the time Stop returns", told, err)
	}
}
