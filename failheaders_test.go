package worker_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestSetFailHeaders: headers set by an attempt that fails are stored with
// the job and read by the next attempt; an attempt that succeeds stores
// nothing; bad headers and a context without a job are refused.
func TestSetFailHeaders(t *testing.T) {
	if err := worker.SetFailHeaders(context.Background(), map[string]string{"k": "v"}); err == nil {
		t.Error("SetFailHeaders outside a job succeeded")
	}
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		seen := make(chan map[string]string, 2)
		_ = m.HandleFunc("flaky", func(ctx context.Context, j *worker.Job) error {
			seen <- maps.Clone(j.Headers)
			if err := worker.SetFailHeaders(ctx, map[string]string{"": "no name"}); !errors.Is(err, worker.ErrInvalidJob) {
				t.Errorf("SetFailHeaders with an empty header name: %v, want ErrInvalidJob", err)
			}
			if err := worker.SetFailHeaders(ctx, map[string]string{"failed": strconv.Itoa(j.Attempt)}); err != nil {
				return err
			}
			if j.Attempt == 1 {
				return errors.New("ledger is busy")
			}
			return nil
		})
		j := add(t, c, "default", worker.JobSpec{Type: "flaky", MaxAttempts: 3, Headers: map[string]string{"origin": "web"}})
		startManager(t, m)
		done := waitState(t, c, "default", j.ID, worker.StateCompleted)
		want := map[string]string{"origin": "web", "failed": "1"}
		if !maps.Equal(done.Headers, want) {
			t.Errorf("completed job's headers %v, want %v (attempt 2 succeeded: it stores nothing)", done.Headers, want)
		}
		if first := <-seen; !maps.Equal(first, map[string]string{"origin": "web"}) {
			t.Errorf("attempt 1 saw headers %v, want the enqueued ones", first)
		}
		if second := <-seen; !maps.Equal(second, want) {
			t.Errorf("attempt 2 saw headers %v, want %v", second, want)
		}
	})
}
