package sqlitebroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// waitObserver reports each time the Manager goes idle in JobWait, so a
// test can add a job only once the Manager is asleep.
type waitObserver struct {
	*sqlitebroker.Broker
	idle chan struct{}
}

func (o *waitObserver) JobWait(ctx context.Context, queues []string, timeout time.Duration) error {
	select {
	case o.idle <- struct{}{}:
	default:
	}
	return o.Broker.JobWait(ctx, queues, timeout)
}

// TestIdleManagerWakes shows an idle Manager that would poll once an hour
// starting a new job, and a delayed job at (not before) its due time.
func TestIdleManagerWakes(t *testing.T) {
	b, _ := openT(t, sqlitebroker.Options{})
	o := &waitObserver{Broker: b, idle: make(chan struct{}, 1)}
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
	defer func() { _ = m.Shutdown(context.Background()) }()
	c, err := worker.NewClient(o, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i, spec := range []worker.JobSpec{
		{Type: "wake.test"},
		{Type: "wake.test"},
		{Type: "wake.test", Delay: 300 * time.Millisecond},
	} {
		select {
		case <-o.idle:
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d: the manager never went idle in JobWait", i)
		}
		added, err := c.Add(context.Background(), "default", spec)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Delay > 0 && added.State != broker.StateScheduled {
			t.Fatalf("job %d: state %s, want scheduled", i, added.State)
		}
		select {
		case j := <-started:
			if j.ID != added.ID {
				t.Fatalf("job %d: started %s, want %s", i, j.ID, added.ID)
			}
			if j.StartedAt.Before(j.RunAt) {
				t.Fatalf("job %d: started at %v, before it was due at %v", i, j.StartedAt, j.RunAt)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("job %d added to an idle manager did not start (poll and maintain intervals are an hour)", i)
		}
	}
}

// TestIdleManagerWakesForRetry: a failed job's retry wakes an idle Manager
// (poll interval an hour) when it falls due.
func TestIdleManagerWakesForRetry(t *testing.T) {
	b, _ := openT(t, sqlitebroker.Options{})
	m, err := worker.NewManager(b, worker.ManagerConfig{PollInterval: time.Hour, MaintainInterval: time.Hour})
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
	defer func() { _ = m.Shutdown(context.Background()) }()
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
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
