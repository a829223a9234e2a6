package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestDefaultRetryWaitsGrowingBackoff: with the default retry policy (1 s
// base, doubling, equal jitter), a job that fails twice is retried after
// a delay in [0.5 s, 1 s], then one in [1 s, 2 s], and the broker runs each
// retry no earlier than that (judged by the broker's StartedAt).
func TestDefaultRetryWaitsGrowingBackoff(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		var mu sync.Mutex
		var delays []time.Duration
		starts := map[int]time.Time{}
		cfg := fastConfig()
		cfg.Retry = worker.ManagerConfig{}.Retry // the default path
		cfg.OnEvent = func(e worker.Event) {
			if e.Kind == worker.EventRetrying {
				mu.Lock()
				delays = append(delays, e.RetryDelay)
				mu.Unlock()
			}
		}
		m := newManager(t, b, cfg)
		_ = m.HandleFunc("flaky", func(ctx context.Context, j *worker.Job) error {
			mu.Lock()
			starts[j.Attempt] = j.StartedAt
			mu.Unlock()
			if j.Attempt < 3 {
				return errors.New("ledger unavailable")
			}
			return nil
		})
		job := add(t, c, "default", worker.JobSpec{Type: "flaky", MaxAttempts: 3})
		startManager(t, m)
		waitState(t, c, "default", job.ID, worker.StateCompleted)

		mu.Lock()
		defer mu.Unlock()
		if len(delays) != 2 || len(starts) != 3 {
			t.Fatalf("saw %d retry delays and %d attempts, want 2 and 3", len(delays), len(starts))
		}
		bounds := [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}}
		const slack = 2 * time.Millisecond // brokers store times at millisecond precision
		for i, d := range delays {
			if d < bounds[i][0] || d > bounds[i][1] {
				t.Errorf("retry %d was scheduled after %v, want within [%v, %v]", i+1, d, bounds[i][0], bounds[i][1])
			}
			if gap := starts[i+2].Sub(starts[i+1]); gap < d-slack {
				t.Errorf("attempt %d started %v after attempt %d, before its %v backoff had passed", i+2, gap, i+1, d)
			}
		}
	})
}
