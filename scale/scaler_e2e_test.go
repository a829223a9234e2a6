package scale_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/scale"
)

// TestScalerEndToEnd: a Scaler on a real Manager over the embedded store
// raises the Manager's concurrency step by step under a backlog of blocked
// jobs, until MaxWorkers jobs run at once; once the backlog is done and
// the Manager idles, it lowers the concurrency back to MinWorkers. Every
// job runs exactly once.
func TestScalerEndToEnd(t *testing.T) {
	const jobs, maxWorkers = 20, 6
	b := testbroker.SQLite(t)
	quiet := slog.New(slog.DiscardHandler)
	m, err := worker.NewManager(b, worker.ManagerConfig{Concurrency: 1, PollInterval: 10 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var running, peak, runs atomic.Int64
	_ = m.HandleFunc("report", func(ctx context.Context, _ *worker.Job) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		runs.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range jobs {
		if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "report"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	s, err := scale.New(m, scale.Config{MaxWorkers: maxWorkers, Interval: 10 * time.Millisecond,
		ScaleUpCooldown: -1, ScaleDownCooldown: -1, Stats: b, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	testwait.For(t, 20*time.Second, "the scaler to raise concurrency to MaxWorkers", func() bool { return m.Concurrency() == maxWorkers })
	testwait.For(t, 20*time.Second, "MaxWorkers jobs running at once", func() bool { return running.Load() == maxWorkers })
	if p := peak.Load(); p > maxWorkers {
		t.Fatalf("%d jobs ran at once, over MaxWorkers %d", p, maxWorkers)
	}
	close(release)
	testwait.For(t, 20*time.Second, "every job completed", func() bool {
		st, err := c.Stats(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		return st.Completed == jobs
	})
	testwait.For(t, 20*time.Second, "the scaler to lower concurrency to MinWorkers when idle", func() bool { return m.Concurrency() == 1 })
	if n := runs.Load(); n != jobs {
		t.Fatalf("processor ran %d times for %d jobs", n, jobs)
	}
}
