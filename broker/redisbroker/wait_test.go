package redisbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// waitObserver reports each time the Manager goes idle in JobWait, so a
// test can add a job only once the Manager is asleep.
type waitObserver struct {
	*redisbroker.Broker
	idle chan struct{}
}

func (o *waitObserver) JobWait(ctx context.Context, queues []string, timeout time.Duration) error {
	select {
	case o.idle <- struct{}{}:
	default:
	}
	return o.Broker.JobWait(ctx, queues, timeout)
}

// startIdleManager runs a Manager that would poll only once an hour: any
// job it starts soon was woken for. Started jobs go to the returned channel.
func startIdleManager(t *testing.T) (*waitObserver, *worker.Client, chan *worker.Job) {
	t.Helper()
	o := &waitObserver{Broker: newBroker(t), idle: make(chan struct{}, 1)}
	m, err := worker.NewManager(o, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *worker.Job, 10)
	if err := m.HandleFunc("wake.test", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	c, err := worker.NewClient(o, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return o, c, started
}

func waitIdle(t *testing.T, o *waitObserver) {
	t.Helper()
	select {
	case <-o.idle:
	case <-time.After(10 * time.Second):
		t.Fatal("the manager never went idle in JobWait")
	}
}

func TestIdleManagerWakesForNewJob(t *testing.T) {
	t.Parallel()
	o, c, started := startIdleManager(t)
	ctx := context.Background()
	for i := range 3 { // the wake-up must work every time, not only the first
		waitIdle(t, o)
		added, err := c.Add(ctx, "default", worker.JobSpec{Type: "wake.test"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case j := <-started:
			if j.ID != added.ID {
				t.Fatalf("job %d: started %s, want %s", i, j.ID, added.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d added to an idle manager did not start (its poll interval is an hour)", i)
		}
	}
}

func TestIdleManagerWakesAtDueTime(t *testing.T) {
	t.Parallel()
	o, c, started := startIdleManager(t)
	ctx := context.Background()
	waitIdle(t, o)
	added, err := c.Add(ctx, "default", worker.JobSpec{Type: "wake.test", Delay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if added.State != broker.StateScheduled {
		t.Fatalf("state %s, want scheduled", added.State)
	}
	select {
	case j := <-started:
		if j.ID != added.ID {
			t.Fatalf("started %s, want %s", j.ID, added.ID)
		}
		if j.StartedAt.Before(j.RunAt) {
			t.Fatalf("started at %v, before it was due at %v", j.StartedAt, j.RunAt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a delayed job did not start after its due time (poll and maintain intervals are an hour)")
	}
}

func TestJobWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("insert wakes a waiter", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		// The first wait returns once its subscription is confirmed.
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "a", Queue: "q", Type: "t", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("JobWait was not woken by an insert")
		}
	})
	t.Run("a wake before the wait is kept", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "a", Queue: "q", Type: "t", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an insert just before JobWait was lost")
		}
	})
	t.Run("cancel and close end a wait", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.JobWait(cctx, []string{"q"}, time.Hour) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("after cancel: %v, want context.Canceled", err)
		}
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("after close: %v, want ErrClosed", err)
		}
	})
}

// A failed job's retry is announced like an insert: an idle Manager whose
// poll interval is an hour still runs the retry when it falls due.
func TestIdleManagerWakesForRetry(t *testing.T) {
	t.Parallel()
	o := &waitObserver{Broker: newBroker(t), idle: make(chan struct{}, 1)}
	m, err := worker.NewManager(o, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	attempts := make(chan int, 10)
	err = m.HandleFunc("wake.retry", func(_ context.Context, j *worker.Job) error {
		attempts <- j.Attempt
		if j.Attempt == 1 {
			return worker.RetryAfter(300*time.Millisecond, errors.New("try again"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	c, err := worker.NewClient(o, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	waitIdle(t, o)
	if _, err := c.Add(context.Background(), "default", worker.JobSpec{Type: "wake.retry", MaxAttempts: 2}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		select {
		case a := <-attempts:
			if a != want {
				t.Fatalf("attempt %d ran, want %d", a, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d did not run (the manager polls once an hour; the retry must wake it)", want)
		}
	}
}

// A job recovered from an expired lease by maintenance wakes an idle
// Manager: a worker leases a job and dies; once the lease has expired,
// maintenance run elsewhere returns it to pending, and a Manager that polls
// and maintains only once an hour runs it.
func TestIdleManagerWakesForRecoveredJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &waitObserver{Broker: newBroker(t), idle: make(chan struct{}, 1)}
	if _, err := o.JobInsert(ctx, &broker.JobInsertParams{ID: "orphan", Queue: "default", Type: "wake.test", MaxAttempts: 3}); err != nil {
		t.Fatal(err)
	}
	leased, err := o.JobFetch(ctx, &broker.JobFetchParams{Queue: "default", Limit: 1, LeaseDuration: 200 * time.Millisecond, WorkerID: "dead-worker"})
	if err != nil || len(leased) != 1 {
		t.Fatalf("lease the orphan: %v, %d jobs", err, len(leased))
	}
	m, err := worker.NewManager(o, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *worker.Job, 1)
	if err := m.HandleFunc("wake.test", func(_ context.Context, j *worker.Job) error { started <- j; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	waitIdle(t, o)
	var recovered int
	deadline := time.Now().Add(10 * time.Second)
	for recovered == 0 && time.Now().Before(deadline) {
		res, err := o.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "default"})
		if err != nil {
			t.Fatal(err)
		}
		recovered = res.Recovered
		time.Sleep(20 * time.Millisecond)
	}
	if recovered != 1 {
		t.Fatal("maintenance did not recover the expired lease")
	}
	select {
	case j := <-started:
		if j.ID != "orphan" || j.Attempt != 2 {
			t.Fatalf("started %s (attempt %d), want orphan on attempt 2", j.ID, j.Attempt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the recovered job did not start (the manager polls and maintains once an hour)")
	}
}
