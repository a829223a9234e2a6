package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/metrics"
)

// histogram gathers reg and returns the processing-time histogram of the
// series with the given type label.
func histogram(t *testing.T, reg *prometheus.Registry, typ string) *dto.Histogram {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != "aibos_worker_job_processing_seconds" {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "type" && l.GetValue() == typ {
					return m.Histogram
				}
			}
		}
	}
	t.Fatalf("no aibos_worker_job_processing_seconds series for type %q", typ)
	return nil
}

// TestProcessingHistogramIsInSeconds: the histogram's sum and buckets are
// in seconds, as its name says: 1.5 s and 250 ms observed sum to 1.75, and
// land in the 0.25 and 2.5 buckets.
func TestProcessingHistogramIsInSeconds(t *testing.T) {
	wm := metrics.New(metrics.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(wm)
	job := &worker.Job{ID: "j1", Queue: "default", Type: "report"}
	wm.Observe(worker.Event{Kind: worker.EventCompleted, Job: job, Duration: 1500 * time.Millisecond})
	wm.Observe(worker.Event{Kind: worker.EventDead, Job: job, Duration: 250 * time.Millisecond})

	h := histogram(t, reg, "report")
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 1.75 {
		t.Fatalf("histogram count %d, sum %v; want 2 attempts summing to 1.75 (seconds)", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{0.1: 0, 0.25: 1, 1: 1, 2.5: 2, 10: 2}
	for _, b := range h.Bucket {
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("bucket le=%v holds %d attempts, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
}

// TestProcessingHistogramFromManager: a job whose processor runs at least
// 300 ms, on a real Manager, adds at least 0.3 and well under a minute to
// the sum (milliseconds would add 300 or more).
func TestProcessingHistogramFromManager(t *testing.T) {
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wm := metrics.New(metrics.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(wm)
	m, err := worker.NewManager(b, worker.ManagerConfig{PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: wm.Observe})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.HandleFunc("slow", func(ctx context.Context, _ *worker.Job) error {
		select {
		case <-time.After(300 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx := context.Background()
	job, err := c.Add(ctx, "default", worker.JobSpec{Type: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.Get(ctx, "default", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == worker.StateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s after 10s", got.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The event is emitted once the completion is stored; wait for it.
	var h *dto.Histogram
	for h = histogram0(reg); h == nil || h.GetSampleCount() == 0; h = histogram0(reg) {
		if time.Now().After(deadline) {
			t.Fatal("no processing time observed within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sum := h.GetSampleSum(); h.GetSampleCount() != 1 || sum < 0.3 || sum >= 60 {
		t.Fatalf("one 300 ms attempt: histogram count %d, sum %v; want 1 and a sum in [0.3, 60) seconds", h.GetSampleCount(), sum)
	}
}

// histogram0 is histogram for type "slow" that returns nil while there is
// no series yet.
func histogram0(reg *prometheus.Registry) *dto.Histogram {
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() == "aibos_worker_job_processing_seconds" && len(f.Metric) > 0 {
			return f.Metric[0].Histogram
		}
	}
	return nil
}
