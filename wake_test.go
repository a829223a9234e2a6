package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// An idle Manager sleeps in the broker's JobWait instead of polling. These
// tests give it a poll and maintain interval of an hour: any job it starts
// within the test's 10 s was woken for.

// waitObserver reports each time the Manager goes idle in JobWait, so a
// test can act only once the Manager is asleep.
type waitObserver struct {
	broker.Broker
	idle      chan struct{}
	fetches   atomic.Int64 // JobFetch calls
	loseWakes atomic.Bool  // JobWaitReady names no queue, as if every wake were lost
	longest   atomic.Int64 // the longest timeout of a JobWaitReady call, in ns
}

func (o *waitObserver) JobWait(ctx context.Context, queues []string, timeout time.Duration) error {
	o.wentIdle(timeout)
	return o.Broker.(broker.Waiter).JobWait(ctx, queues, timeout)
}

func (o *waitObserver) JobWaitReady(ctx context.Context, queues []string, timeout time.Duration) ([]string, error) {
	o.wentIdle(timeout)
	for {
		old := o.longest.Load()
		if int64(timeout) <= old || o.longest.CompareAndSwap(old, int64(timeout)) {
			break
		}
	}
	ready, err := o.Broker.(broker.ReadyWaiter).JobWaitReady(ctx, queues, timeout)
	if o.loseWakes.Load() {
		return nil, err
	}
	return ready, err
}

// wentIdle signals a wait that may block; a wait with timeout 0 only
// collects wakes.
func (o *waitObserver) wentIdle(timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	select {
	case o.idle <- struct{}{}:
	default:
	}
}

func (o *waitObserver) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	o.fetches.Add(1)
	return o.Broker.JobFetch(ctx, p)
}

func (o *waitObserver) waitIdle(t *testing.T) {
	t.Helper()
	o.waitIdleWithin(t, 10*time.Second)
}

func (o *waitObserver) waitIdleWithin(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-o.idle:
	case <-time.After(d):
		t.Fatalf("the manager did not go idle in JobWait within %v", d)
	}
}

// idleManager starts a Manager on o that polls and maintains once an hour
// and runs f for jobs of type "wake".
func idleManager(t *testing.T, o *waitObserver, f func(ctx context.Context, j *worker.Job) error) {
	t.Helper()
	if _, ok := o.Broker.(broker.Waiter); !ok {
		t.Fatalf("%T is not a broker.Waiter", o.Broker)
	}
	m := newManager(t, o, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
	if err := m.HandleFunc("wake", f); err != nil {
		t.Fatal(err)
	}
	startManager(t, m)
}

func observe(b broker.Broker) *waitObserver {
	return &waitObserver{Broker: b, idle: make(chan struct{}, 1)}
}

// receive returns the next job sent on ch, failing after 10 s with why.
func receive[T any](t *testing.T, ch <-chan T, why string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal(why + " (the manager polls once an hour)")
		panic("unreachable")
	}
}

func TestIdleManagerWakesForNewAndDelayedJobs(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := observe(b)
		started := make(chan *worker.Job, 10)
		idleManager(t, o, func(_ context.Context, j *worker.Job) error { started <- j; return nil })
		c := newClient(t, o)
		for i, spec := range []worker.JobSpec{ // every time, not only the first
			{Type: "wake"}, {Type: "wake"}, {Type: "wake"},
			{Type: "wake", Delay: 300 * time.Millisecond},
		} {
			o.waitIdle(t)
			added := add(t, c, "default", spec)
			if spec.Delay > 0 && added.State != broker.StateScheduled {
				t.Fatalf("job %d: state %s, want scheduled", i, added.State)
			}
			j := receive(t, started, "a job added to an idle manager did not start")
			if j.ID != added.ID {
				t.Fatalf("job %d: started %s, want %s", i, j.ID, added.ID)
			}
			if j.StartedAt.Before(j.RunAt) {
				t.Fatalf("job %d: started at %v, before it was due at %v", i, j.StartedAt, j.RunAt)
			}
		}
	})
}

// A failed job's retry is announced like an insert.
func TestIdleManagerWakesForRetry(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := observe(b)
		attempts := make(chan int, 10)
		idleManager(t, o, func(_ context.Context, j *worker.Job) error {
			attempts <- j.Attempt
			if j.Attempt == 1 {
				return worker.RetryAfter(300*time.Millisecond, errors.New("try again"))
			}
			return nil
		})
		o.waitIdle(t)
		add(t, newClient(t, o), "default", worker.JobSpec{Type: "wake", MaxAttempts: 2})
		for want := 1; want <= 2; want++ {
			if a := receive(t, attempts, "an attempt did not run"); a != want {
				t.Fatalf("attempt %d ran, want %d", a, want)
			}
		}
	})
}

// A worker leases a job and dies; once the lease has expired, maintenance
// run elsewhere returns it to pending, and the idle Manager runs it.
func TestIdleManagerWakesForRecoveredJob(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		o := observe(b)
		if _, err := o.JobInsert(ctx, &broker.JobInsertParams{ID: "orphan", Queue: "default", Type: "wake", MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		leased, err := o.JobFetch(ctx, &broker.JobFetchParams{Queue: "default", Limit: 1, LeaseDuration: 200 * time.Millisecond, WorkerID: "dead-worker"})
		if err != nil || len(leased) != 1 {
			t.Fatalf("lease the orphan: %v, %d jobs", err, len(leased))
		}
		started := make(chan *worker.Job, 1)
		idleManager(t, o, func(_ context.Context, j *worker.Job) error { started <- j; return nil })
		o.waitIdle(t)
		// The Manager's own first maintenance, at Start, may be the one that
		// recovers it when the machine is slow: either will do.
		waitFor(t, 10*time.Second, "maintenance to recover the expired lease", func() bool {
			res, err := o.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "default"})
			if err != nil {
				t.Fatal(err)
			}
			j, err := o.JobGet(ctx, &broker.JobGetParams{Queue: "default", ID: "orphan"})
			if err != nil {
				t.Fatal(err)
			}
			return res.Recovered == 1 || j.WorkerID != "dead-worker"
		})
		if j := receive(t, started, "the recovered job did not start"); j.ID != "orphan" || j.Attempt != 2 {
			t.Fatalf("started %s (attempt %d), want orphan on attempt 2", j.ID, j.Attempt)
		}
	})
}

// An idle Manager serving many queues fetches from the queue a job came
// into, not from each of them in turn: one round trip, not hundreds.
func TestIdleManagerFetchesTheQueueWoken(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := observe(b)
		queues := make([]worker.QueueConfig, 100)
		for i := range queues {
			queues[i] = worker.QueueConfig{Name: fmt.Sprintf("q%03d", i)}
		}
		started := make(chan *worker.Job, 1)
		m := newManager(t, o, worker.ManagerConfig{Queues: queues, PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
		if err := m.HandleFunc("wake", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		c := newClient(t, o)
		// Its first rounds look into every queue (a write transaction
		// each on the embedded store): slow under the race detector.
		o.waitIdleWithin(t, time.Minute)
		for _, q := range []string{"q077", "q003", "q099"} {
			before := o.fetches.Load()
			added := add(t, c, q, worker.JobSpec{Type: "wake"})
			if j := receive(t, started, "a job added to an idle manager did not start"); j.ID != added.ID {
				t.Fatalf("started %s, want %s", j.ID, added.ID)
			}
			o.waitIdle(t)
			if n := o.fetches.Load() - before; n > 2 {
				t.Fatalf("the manager fetched %d times for one job in %s among %d queues, want the woken queue only", n, q, len(queues))
			}
		}
	})
}

// A job whose wake is lost is found all the same: at idle PollIntervals
// the Manager polls one of its queues in turn.
func TestIdleManagerPollsEachQueueInTurn(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := observe(b)
		o.loseWakes.Store(true)
		queues := []worker.QueueConfig{{Name: "a"}, {Name: "b"}, {Name: "c"}}
		started := make(chan *worker.Job, 1)
		m := newManager(t, o, worker.ManagerConfig{Queues: queues, PollInterval: 20 * time.Millisecond, MaintainInterval: time.Hour, Logger: discardLogger})
		if err := m.HandleFunc("wake", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		o.waitIdle(t)
		added := add(t, newClient(t, o), "b", worker.JobSpec{Type: "wake"})
		select {
		case j := <-started:
			if j.ID != added.ID {
				t.Fatalf("started %s, want %s", j.ID, added.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a job whose wake was lost did not start within 10 s (3 queues polled in turn, every 20 to 160 ms)")
		}
	})
}

// TestIdleManagerSleepsUntilTheNextSweep: an idle Manager none of whose
// queues leased jobs lately has nothing to poll until its next sweep, so
// it waits for a wake until then in one call (8 PollIntervals once
// nothing has come for a while), instead of waking at every PollInterval
// to count: each wake of a waiting Manager costs CPU, the more so with
// many Manager processes on one machine.
func TestIdleManagerSleepsUntilTheNextSweep(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := observe(b)
		const poll = 20 * time.Millisecond
		m := newManager(t, o, worker.ManagerConfig{PollInterval: poll, MaintainInterval: time.Hour, Logger: discardLogger})
		startManager(t, m)
		waitFor(t, 10*time.Second, "an idle wait of 8 PollIntervals", func() bool {
			return time.Duration(o.longest.Load()) >= 8*poll
		})
		if got := time.Duration(o.longest.Load()); got > 8*poll {
			t.Fatalf("an idle Manager waited up to %v at once, want at most 8 PollIntervals (%v): a job whose wake was lost waits that long", got, 8*poll)
		}
	})
}

// addDuringFetch adds a job once, during a fetch that comes back empty:
// after the broker ran the fetch, before the Manager has its (empty)
// reply. It holds the reply until the job's wake has reached the broker's
// waiters, and keeps that wake for the Manager's next wait, as the broker
// keeps a wake nobody waited for: so the Manager collects it right after
// the empty fetch, before it goes idle, step by step on every engine.
type addDuringFetch struct {
	*waitObserver
	armed  atomic.Bool
	missed atomic.Bool // the wake did not come: the test cannot decide
	mu     sync.Mutex
	kept   []string
}

func (a *addDuringFetch) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	jobs, err := a.waitObserver.JobFetch(ctx, p)
	if err != nil || len(jobs) > 0 || !a.armed.CompareAndSwap(true, false) {
		return jobs, err
	}
	if _, err := a.JobInsert(ctx, &broker.JobInsertParams{ID: "late", Queue: p.Queue, Type: "wake", MaxAttempts: 1}); err != nil {
		return nil, err
	}
	woke, err := a.Broker.(broker.ReadyWaiter).JobWaitReady(ctx, []string{p.Queue}, 10*time.Second)
	if err != nil || len(woke) == 0 {
		a.missed.Store(true)
	}
	a.mu.Lock()
	a.kept = append(a.kept, woke...)
	a.mu.Unlock()
	return jobs, nil
}

func (a *addDuringFetch) JobWaitReady(ctx context.Context, queues []string, timeout time.Duration) ([]string, error) {
	a.mu.Lock()
	kept := a.kept
	a.kept = nil
	a.mu.Unlock()
	if len(kept) > 0 {
		return kept, nil
	}
	return a.waitObserver.JobWaitReady(ctx, queues, timeout)
}

// TestWakeDuringEmptyFetchIsNotLost: a job added while a fetch of its
// queue is on its way back empty is fetched at once, though its wake came
// before the Manager went idle. The wake was taken and dropped, the queue
// counted as tried, and the job waited for the next insert's wake (10 ms
// in issue 19's benchmark, which made its no-flood p99 bimodal) or for a
// poll (an hour here).
func TestWakeDuringEmptyFetchIsNotLost(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		a := &addDuringFetch{waitObserver: observe(b)}
		a.armed.Store(true) // the Manager's first fetch finds the queue empty
		started := make(chan *worker.Job, 1)
		m := newManager(t, a, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
		if err := m.HandleFunc("wake", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		select {
		case j := <-started:
			if j.ID != "late" {
				t.Fatalf("started %s, want late", j.ID)
			}
		case <-time.After(10 * time.Second):
			if a.armed.Load() || a.missed.Load() {
				t.Fatal("undecided: no fetch came back empty, or the added job's wake did not come within 10 s")
			}
			t.Fatal("a job whose wake came during an empty fetch did not start within 10 s (the manager polls once an hour)")
		}
	})
}
