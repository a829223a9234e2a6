package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// manyQueues returns n queue configs named q000, q001, ...
func manyQueues(n int) []worker.QueueConfig {
	qs := make([]worker.QueueConfig, n)
	for i := range qs {
		qs[i] = worker.QueueConfig{Name: fmt.Sprintf("q%03d", i)}
	}
	return qs
}

// listingObserver is a waitObserver that also lists the queues holding
// pending jobs, as both of this module's brokers do (waitObserver alone
// hides the capability).
type listingObserver struct{ *waitObserver }

func (o listingObserver) QueuesPending(ctx context.Context, queues []string) ([]string, error) {
	return o.Broker.(broker.PendingLister).QueuesPending(ctx, queues)
}

// TestStartFetchesOnlyQueuesHoldingJobs: a Manager starting on 300
// queues, two of which hold jobs, fetches from those two, not from each
// of the 300 in turn (a round trip each, a write transaction on SQLite,
// in front of a job added meanwhile).
func TestStartFetchesOnlyQueuesHoldingJobs(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := listingObserver{observe(b)}
		queues := manyQueues(300)
		c := newClient(t, b)
		add(t, c, "q017", worker.JobSpec{Type: "wake"})
		add(t, c, "q256", worker.JobSpec{Type: "wake"})
		started := make(chan *worker.Job, 2)
		m := newManager(t, o, worker.ManagerConfig{Queues: queues, PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
		if err := m.HandleFunc("wake", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		for range 2 {
			receive(t, started, "a job added before Start did not start")
		}
		o.waitIdleWithin(t, time.Minute)
		if n := o.fetches.Load(); n > 4 {
			t.Fatalf("the manager fetched %d times to find the jobs of 2 queues among %d, want about one fetch per queue holding jobs", n, len(queues))
		}
	})
}

// triedObserver counts fetches per queue, and adds a job to the queue of
// the first fetch at the fetch numbered at.
type triedObserver struct {
	*waitObserver
	c  *worker.Client
	at int

	mu     sync.Mutex
	order  []string // the queue of each fetch
	added  int      // fetches before the job was added; -1: not yet
	target string
}

func (o *triedObserver) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	o.mu.Lock()
	o.order = append(o.order, p.Queue)
	if len(o.order) == o.at {
		o.target = o.order[0]
		if _, err := o.c.Add(ctx, o.target, worker.JobSpec{Type: "wake"}); err != nil {
			o.mu.Unlock()
			return nil, err
		}
		o.added = len(o.order)
	}
	o.mu.Unlock()
	return o.waitObserver.JobFetch(ctx, p)
}

// TestStartRoundTakesWokenQueueAgain: while a Manager whose broker cannot
// list the queues holding jobs tries each of 300 queues in turn at start,
// a job added to a queue the round has tried already is fetched at its
// wake, not after the round has tried the other queues.
func TestStartRoundTakesWokenQueueAgain(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		o := &triedObserver{waitObserver: observe(b), c: newClient(t, b), at: 5, added: -1}
		queues := manyQueues(300)
		started := make(chan *worker.Job, 1)
		m := newManager(t, o, worker.ManagerConfig{Queues: queues, PollInterval: time.Hour, MaintainInterval: time.Hour, Logger: discardLogger})
		if err := m.HandleFunc("wake", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		j := receive(t, started, "a job added during the start round did not start")
		o.mu.Lock()
		defer o.mu.Unlock()
		if j.Queue != o.target {
			t.Fatalf("started a job of %s, want the one added to %s", j.Queue, o.target)
		}
		fetchedAt := -1
		for i := o.added; i < len(o.order); i++ {
			if o.order[i] == o.target {
				fetchedAt = i
				break
			}
		}
		if fetchedAt < 0 || fetchedAt >= len(queues) {
			t.Fatalf("the job added to %s after fetch %d was fetched at fetch %d, want before the round over %d queues ended", o.target, o.added, fetchedAt, len(queues))
		}
		t.Logf("added after fetch %d, fetched at fetch %d", o.added, fetchedAt)
	})
}

// TestWaitChecksAChangedQueueList: the brokers skip checking (and on Redis
// subscribing) a queue list equal to the last one they found all known,
// which a Manager passes at every wait; a list that differs, even the same
// slice changed in place, is checked again: an invalid name is refused, and
// a new queue's wakes come.
func TestWaitChecksAChangedQueueList(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		w := b.(broker.ReadyWaiter)
		names := []string{"list-a", "list-b"}
		for range 3 {
			if _, err := w.JobWaitReady(ctx, names, 0); err != nil {
				t.Fatalf("JobWaitReady(%v): %v", names, err)
			}
		}
		if _, err := w.JobWaitReady(ctx, append(names[:2:2], ""), 0); !errors.Is(err, broker.ErrInvalidJob) {
			t.Fatalf("JobWaitReady with an empty queue name added: %v, want ErrInvalidJob", err)
		}
		names[1] = ""
		if _, err := w.JobWaitReady(ctx, names, 0); !errors.Is(err, broker.ErrInvalidJob) {
			t.Fatalf("JobWaitReady with a name changed in place to empty: %v, want ErrInvalidJob", err)
		}
		names[1] = "list-c"
		if _, err := w.JobWaitReady(ctx, names, 0); err != nil {
			t.Fatalf("JobWaitReady(%v): %v", names, err)
		}
		for range 2 { // a subscription's confirmation wakes its queue once
			if _, err := w.JobWaitReady(ctx, names, 0); err != nil {
				t.Fatalf("JobWaitReady(%v): %v", names, err)
			}
		}
		add(t, newClient(t, b), "list-c", worker.JobSpec{Type: "wake"})
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := w.JobWaitReady(ctx, names, time.Until(deadline))
			if err != nil {
				t.Fatalf("JobWaitReady(%v): %v", names, err)
			}
			if slices.Contains(got, "list-c") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no wake named list-c within 10 s of a job added to it, after it replaced list-b in the list waited on")
			}
		}
	})
}
