package series_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/internal/testbroker"
)

// TestRecordsManagerEvents feeds a real Manager's events to a Recorder:
// 4 jobs complete and 2 fail for good; the stored minute says so.
func TestRecordsManagerEvents(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		r, err := series.NewRecorder(b, series.Config{})
		if err != nil {
			t.Fatal(err)
		}
		finished := make(chan worker.EventKind, 16)
		m, err := worker.NewManager(b, worker.ManagerConfig{Queues: []worker.QueueConfig{{Name: "invoices"}},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnEvent: func(e worker.Event) {
				r.Observe(e)
				if e.Kind != worker.EventStarted {
					finished <- e.Kind
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := m.HandleFunc("bad", func(context.Context, *worker.Job) error { return worker.NoRetry(errors.New("malformed")) }); err != nil {
			t.Fatal(err)
		}
		c, err := worker.NewClient(b, worker.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		from := time.Now()
		for _, typ := range []string{"ok", "bad", "ok", "ok", "bad", "ok"} {
			if _, err := c.Add(ctx, "invoices", worker.JobSpec{Type: typ}); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = m.Shutdown(ctx) }()
		timeout := time.After(20 * time.Second)
		for range 6 {
			select {
			case <-finished:
			case <-timeout:
				t.Fatal("timed out waiting for 6 jobs to finish")
			}
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		ms, err := series.Read(ctx, b, series.ReadParams{Queue: "invoices", From: from, To: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		var completed, failed, dead, count int64
		for _, m := range ms {
			completed, failed, dead, count = completed+m.Completed, failed+m.Failed, dead+m.Dead, count+m.Latency.Count
		}
		if completed != 4 || failed != 2 || dead != 2 || count != 6 {
			t.Fatalf("stored: completed %d, failed %d, dead %d, latency count %d; want 4, 2, 2, 6", completed, failed, dead, count)
		}
	})
}
