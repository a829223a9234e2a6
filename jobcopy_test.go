package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestProcessorScribblingOverItsJob: a processor gets its own copy of the
// job; whatever it changes, the job is still acknowledged as itself and
// events report it as it was leased.
func TestProcessorScribblingOverItsJob(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		var mu sync.Mutex
		var completed []*worker.Job
		cfg := fastConfig()
		cfg.OnEvent = func(e worker.Event) {
			if e.Kind == worker.EventCompleted {
				mu.Lock()
				completed = append(completed, e.Job)
				mu.Unlock()
			}
		}
		m := newManager(t, b, cfg)
		_ = m.HandleFunc("scribble", func(ctx context.Context, j *worker.Job) error {
			j.ID, j.Queue, j.Type = "someone-else", "other-queue", "other-type"
			j.LeaseToken, j.Attempt, j.MaxAttempts = 0, 99, 0
			j.Data = json.RawMessage(`{"scribbled":true}`)
			j.Headers["origin"] = "scribbled"
			j.Headers["new"] = "x"
			return worker.SetResult(ctx, "done")
		})
		job := add(t, c, "default", worker.JobSpec{Type: "scribble", Data: map[string]int{"n": 1}, Headers: map[string]string{"origin": "test"}})
		startManager(t, m)
		got := waitState(t, c, "default", job.ID, worker.StateCompleted)
		if string(got.Result) != `"done"` || got.Headers["origin"] != "test" {
			t.Fatalf("stored job: result %s, headers %v; want the result and the original headers", got.Result, got.Headers)
		}
		waitFor(t, 10*time.Second, "the completed event", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(completed) == 1
		})
		mu.Lock()
		defer mu.Unlock()
		if e := completed[0]; e.ID != job.ID || e.Queue != "default" || e.Type != "scribble" || e.Attempt != 1 || e.Headers["origin"] != "test" || len(e.Headers) != 1 {
			t.Fatalf("completed event reports job %s in %q (%s), attempt %d, headers %v; want the job as leased", e.ID, e.Queue, e.Type, e.Attempt, e.Headers)
		}
	})
}
