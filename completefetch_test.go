package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/testbroker"
)

// ackCounter is the Redis broker, every capability included, counting
// the completions written alone (JobComplete) and with a fetch
// (JobCompleteFetch).
type ackCounter struct {
	*redisbroker.Broker
	alone, withFetch atomic.Int64
}

func (b *ackCounter) JobComplete(ctx context.Context, ps []*broker.JobCompleteParams) ([]error, error) {
	b.alone.Add(int64(len(ps)))
	return b.Broker.JobComplete(ctx, ps)
}

func (b *ackCounter) JobCompleteFetch(ctx context.Context, ps []*broker.JobCompleteParams, p *broker.JobFetchParams) (*broker.CompleteFetchResult, error) {
	b.withFetch.Add(int64(len(ps)))
	return b.Broker.JobCompleteFetch(ctx, ps, p)
}

func newAckCounter(t *testing.T) *ackCounter {
	t.Helper()
	rb, ok := testbroker.Redis(t).(*redisbroker.Broker)
	if !ok {
		t.Fatal("testbroker.Redis did not return a *redisbroker.Broker")
	}
	return &ackCounter{Broker: rb}
}

// TestBusyManagerSendsCompletionsWithFetches: a busy Manager on a broker
// that takes completions and a fetch in one round trip sends completions
// with its fetches, and every job still completes with its event.
func TestBusyManagerSendsCompletionsWithFetches(t *testing.T) {
	t.Parallel()
	b := newAckCounter(t)
	c := newClient(t, b)
	const n = 400
	specs := make([]worker.JobSpec, n)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "work"}
	}
	if _, err := c.AddMany(context.Background(), "default", specs); err != nil {
		t.Fatal(err)
	}
	cfg := steadyConfig()
	cfg.Concurrency = 10
	var completed *atomic.Int64
	cfg.OnEvent, completed = countEvents(worker.EventCompleted)
	m := newManager(t, b, cfg)
	_ = m.HandleFunc("work", func(context.Context, *worker.Job) error { return nil })
	startManager(t, m)
	waitCompleted(t, c, "default", n)
	waitFor(t, 10*time.Second, "an event per completed job", func() bool { return completed.Load() == n })
	alone, with := b.alone.Load(), b.withFetch.Load()
	if alone+with != n {
		t.Errorf("%d completions written alone and %d with fetches, want %d in all", alone, with, n)
	}
	if with == 0 {
		t.Errorf("no completion went with a fetch (%d written alone)", alone)
	}
	t.Logf("%d completions written alone, %d with fetches", alone, with)
}

// TestCompletionWrittenWhenNoFetchComes: completions wait for a fetch
// only while one is coming. An idle Manager (its queue empty, its next
// poll an hour away) writes a completion at once; so does a Manager whose
// slots are all taken, by a job that runs on, after SetConcurrency
// lowered its limit, with or without a job leased ahead that waits for a
// slot and no deadline to give up (a fixed Prefetch).
func TestCompletionWrittenWhenNoFetchComes(t *testing.T) {
	t.Parallel()
	for _, prefetch := range []int{worker.PrefetchOff, 1} {
		t.Run(fmt.Sprintf("prefetch %d", prefetch), func(t *testing.T) {
			t.Parallel()
			completionWrittenWhenNoFetchComes(t, prefetch)
		})
	}
}

func completionWrittenWhenNoFetchComes(t *testing.T, prefetch int) {
	b := newAckCounter(t)
	c := newClient(t, b)
	cfg := steadyConfig()
	cfg.Concurrency = 2
	cfg.Prefetch = prefetch
	cfg.PollInterval = time.Hour
	m := newManager(t, b, cfg)
	release := map[string]chan struct{}{}
	for _, id := range []string{"a", "b", "c", "d"} {
		release[id] = make(chan struct{})
	}
	_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
		select {
		case <-release[j.ID]:
		case <-ctx.Done():
		}
		return nil
	})
	add(t, c, "default", worker.JobSpec{ID: "a", Type: "work"})
	startManager(t, m)
	waitState(t, c, "default", "a", worker.StateActive)
	// The queue is empty: the Manager waits for work.
	close(release["a"])
	waitState(t, c, "default", "a", worker.StateCompleted)

	defer close(release["c"])
	defer close(release["d"])
	add(t, c, "default", worker.JobSpec{ID: "b", Type: "work"})
	add(t, c, "default", worker.JobSpec{ID: "c", Type: "work"})
	waitFor(t, 10*time.Second, "both jobs to run", func() bool { return m.Busy() == 2 })
	if prefetch > 0 {
		add(t, c, "default", worker.JobSpec{ID: "d", Type: "work"})
		waitState(t, c, "default", "d", worker.StateActive) // leased ahead
	}
	if err := m.SetConcurrency(1); err != nil {
		t.Fatal(err)
	}
	// c runs on and takes the one slot left: no fetch comes.
	close(release["b"])
	waitState(t, c, "default", "b", worker.StateCompleted)
}
