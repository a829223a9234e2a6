package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/retry"
)

// TestNoRetryIsOneMarker: worker.NoRetry and retry.NoRetry are one marker.
// A processor returning retry's (wrapped) kills the job at once, and
// retry.Manager stops on worker's.
func TestNoRetryIsOneMarker(t *testing.T) {
	calls := 0
	rm := retry.Manager{Sleep: func(context.Context, time.Duration) error { return nil }}
	bad := errors.New("invoice has no id")
	err := rm.Retry(context.Background(), func(context.Context) error { calls++; return worker.NoRetry(bad) })
	if calls != 1 || !errors.Is(err, bad) {
		t.Fatalf("retry.Manager.Retry on worker.NoRetry: %v after %d calls, want the error after 1", err, calls)
	}
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		_ = m.HandleFunc("bad", func(ctx context.Context, j *worker.Job) error {
			return fmt.Errorf("load invoice: %w", retry.NoRetry(bad))
		})
		j := add(t, c, "default", worker.JobSpec{Type: "bad", MaxAttempts: 5})
		startManager(t, m)
		if got := waitState(t, c, "default", j.ID, worker.StateDead); got.Attempt != 1 {
			t.Fatalf("a job failed with a wrapped retry.NoRetry is dead at attempt %d, want 1", got.Attempt)
		}
	})
}
