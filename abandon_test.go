package worker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// hangingManager returns a Manager on b whose "hang" processor ignores its
// context until release is called (at the latest when the test ends).
func hangingManager(t *testing.T, b broker.Broker, cfg worker.ManagerConfig) (m *worker.Manager, release func()) {
	m = newManager(t, b, cfg)
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	_ = m.HandleFunc("hang", func(ctx context.Context, j *worker.Job) error {
		<-ch // ignores ctx
		return nil
	})
	return m, release
}

// A processor that ignores its context: AbandonGrace after its timeout the
// attempt ends without it (failed, retried, then dead), other jobs keep
// flowing through the free slot, and the abandoned goroutine keeps its run
// slot, counted by Stuck, until it returns; then the slot serves again.
func TestAbandonProcessorPastTimeout(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		cfg := fastConfig()
		cfg.Concurrency = 3
		cfg.AbandonGrace = 100 * time.Millisecond
		m, release := hangingManager(t, b, cfg)
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error { return nil })
		startManager(t, m)

		hang := add(t, c, "default", worker.JobSpec{Type: "hang", Timeout: 100 * time.Millisecond, MaxAttempts: 2})
		// Each attempt is abandoned in turn; the retry takes a second slot.
		d := waitState(t, c, "default", hang.ID, worker.StateDead)
		if d.Attempt != 2 || !strings.Contains(d.LastError, "did not return within 100ms after its context ended") ||
			!strings.Contains(d.LastError, "timed out") {
			t.Fatalf("hanging job: attempt %d, last error %q; want dead on attempt 2, abandoned after its timeout", d.Attempt, d.LastError)
		}
		waitFor(t, 10*time.Second, "two slots to be held by abandoned processors", func() bool { return m.Stuck() == 2 })
		for range 5 { // through the third slot
			j := add(t, c, "default", worker.JobSpec{Type: "work"})
			waitState(t, c, "default", j.ID, worker.StateCompleted)
		}
		add(t, c, "default", worker.JobSpec{Type: "hang", Timeout: 100 * time.Millisecond, MaxAttempts: 1})
		waitFor(t, 10*time.Second, "every slot to be held by an abandoned processor", func() bool { return m.Stuck() == 3 })
		if busy := m.Busy(); busy != cfg.Concurrency {
			t.Fatalf("Busy %d with %d abandoned processors running; want %d (their slots stay taken)", busy, m.Stuck(), cfg.Concurrency)
		}
		late := add(t, c, "default", worker.JobSpec{Type: "work"})
		release()
		waitState(t, c, "default", late.ID, worker.StateCompleted)
		waitFor(t, 10*time.Second, "the stuck count to drop to 0", func() bool { return m.Stuck() == 0 })
		if j, err := c.Get(ctx, "default", hang.ID); err != nil || j.State != worker.StateDead || j.Attempt != 2 {
			t.Fatalf("after the abandoned processors returned the hanging job is %v (%v); want dead on attempt 2 (late returns dropped)", j, err)
		}
	})
}

// The Manager's own Timeout (jobs that set none) and a lost lease start
// the watchdog too: AbandonGrace after the processor's context ended, an
// attempt whose processor ignores it is ended without it, while a
// processor that returns at its context's end is never abandoned, and
// several processors timing out together are each abandoned.
func TestAbandonUnderManagerTimeoutAndLeaseLoss(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		cfg := fastConfig()
		cfg.Timeout = 300 * time.Millisecond
		cfg.AbandonGrace = 100 * time.Millisecond
		cfg.HeartbeatInterval = 50 * time.Millisecond
		m, release := hangingManager(t, b, cfg)
		_ = m.HandleFunc("obey", func(ctx context.Context, j *worker.Job) error {
			<-ctx.Done()
			return ctx.Err()
		})
		startManager(t, m)

		obey := add(t, c, "default", worker.JobSpec{Type: "obey", MaxAttempts: 1})
		hangs := []*worker.Job{
			add(t, c, "default", worker.JobSpec{Type: "hang", MaxAttempts: 1}),
			add(t, c, "default", worker.JobSpec{Type: "hang", MaxAttempts: 1}),
		}
		if d := waitState(t, c, "default", obey.ID, worker.StateDead); !strings.Contains(d.LastError, "timed out after 300ms") ||
			strings.Contains(d.LastError, "did not return") {
			t.Fatalf("job that returned at its timeout: last error %q; want its timeout, not abandoned", d.LastError)
		}
		for _, h := range hangs {
			d := waitState(t, c, "default", h.ID, worker.StateDead)
			if !strings.Contains(d.LastError, "did not return within 100ms after its context ended") ||
				!strings.Contains(d.LastError, "timed out after 300ms") {
				t.Fatalf("hanging job under the Manager's timeout: last error %q; want abandoned after its timeout", d.LastError)
			}
		}
		waitFor(t, 10*time.Second, "two slots held by abandoned processors", func() bool { return m.Stuck() == 2 })

		// Its own timeout is an hour: only the lost lease can end it.
		lost := add(t, c, "default", worker.JobSpec{Type: "hang", Timeout: time.Hour, MaxAttempts: 1})
		waitState(t, c, "default", lost.ID, worker.StateActive)
		if _, err := c.Cancel(ctx, "default", lost.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the processor whose lease was lost to be abandoned", func() bool { return m.Stuck() == 3 })
		release()
		waitFor(t, 10*time.Second, "the stuck count to drop to 0", func() bool { return m.Stuck() == 0 })
	})
}
