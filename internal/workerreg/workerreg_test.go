package workerreg_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/internal/workerreg"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func manager(t *testing.T, b broker.Broker, id string) *worker.Manager {
	t.Helper()
	m, err := worker.NewManager(b, worker.ManagerConfig{WorkerID: id, Concurrency: 4, Logger: quiet,
		Queues: []worker.QueueConfig{{Name: "invoices"}, {Name: "emails"}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func find(t *testing.T, b broker.Broker, id string) *workerreg.Worker {
	t.Helper()
	ws, err := workerreg.List(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == id {
			return w
		}
	}
	return nil
}

// TestHeartbeatShowsBusySlots runs a real Manager with a job that holds
// one of its four slots and waits for the registry to show it.
func TestHeartbeatShowsBusySlots(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		m := manager(t, b, "w-busy")
		release := make(chan struct{})
		if err := m.HandleFunc("hold", func(ctx context.Context, _ *worker.Job) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = m.Shutdown(ctx) }()
		defer close(release)
		h, err := workerreg.Start(ctx, b, m, workerreg.Config{Interval: 20 * time.Millisecond, Version: "1.2.3", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.Stop(ctx) }()
		w := find(t, b, "w-busy")
		if w == nil || w.Busy != 0 || w.Concurrency != 4 || w.Version != "1.2.3" || w.PID == 0 || w.Host == "" ||
			!slices.Equal(w.Queues, []string{"invoices", "emails"}) || w.Started.IsZero() {
			t.Fatalf("after Start: %+v", w)
		}
		c, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Add(ctx, "invoices", worker.JobSpec{Type: "hold"}); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 10*time.Second, "the registry to show one busy slot of four", func() bool {
			w := find(t, b, "w-busy")
			return w != nil && w.Busy == 1 && w.Utilisation == 0.25
		})
	})
}

// TestGoneAndRemoved: a worker whose heartbeats stop (its process died) is
// shown as gone after three intervals, and removed by another worker's
// heartbeat after RemoveAfter; a worker that beats rarely is neither; a
// worker that stops cleanly leaves at once.
func TestGoneAndRemoved(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		// An hour's interval: gone only after three hours, whatever the
		// machine's load, so the checks that it is not gone can decide.
		slow, err := workerreg.Start(ctx, b, manager(t, b, "w-slow"), workerreg.Config{Interval: time.Hour, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = slow.Stop(ctx) }()
		dying, cancel := context.WithCancel(ctx)
		h1, err := workerreg.Start(dying, b, manager(t, b, "w-dies"), workerreg.Config{Interval: 30 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if find(t, b, "w-dies") == nil {
			t.Fatal("a started worker is not listed")
		}
		cancel() // its heartbeats stop without a goodbye, as if it died
		testwait.For(t, 10*time.Second, "the dead worker to show as gone", func() bool {
			w := find(t, b, "w-dies")
			return w != nil && w.Gone
		})
		pruner, err := workerreg.Start(ctx, b, manager(t, b, "w-prunes"), workerreg.Config{Interval: 30 * time.Millisecond,
			RemoveAfter: 300 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 10*time.Second, "the dead worker to be removed", func() bool { return find(t, b, "w-dies") == nil })
		// The pruner has removed what it may; give it a few more beats.
		testwait.For(t, 10*time.Second, "the pruner's later heartbeats", func() bool {
			w := find(t, b, "w-prunes")
			return w != nil && time.Since(w.Started) > time.Second
		})
		if w := find(t, b, "w-slow"); w == nil || w.Gone {
			t.Fatalf("the worker that beats hourly: %+v, want listed and not gone", w)
		}
		if err := pruner.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if w := find(t, b, "w-prunes"); w != nil {
			t.Fatalf("a cleanly stopped worker is still listed: %+v", w)
		}
		_ = h1.Stop(ctx)
	})
}
