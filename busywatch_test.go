package worker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// A busy Manager hears an insert also after its watcher of wakes returned
// without one: the next watcher is out at once, and waits out the rest of
// the pause between two (a microsecond per queue served) before it
// listens. Before, a watcher asked for within the pause was skipped, and
// the fetcher, which asks again only once a slot frees, heard no wake
// until then: every slot held, the job a wake announced was not leased at
// all; slots freeing together every 2 ms, it started a round later (issue
// 19's flood tail). The Manager serves thirty queues, so that the
// pause is longer than the fetcher's turn from one watcher to the next.
func TestBusyManagerHearsWakesAfterQuietWatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		queues := []worker.QueueConfig{{Name: "busy"}}
		for i := range 29 {
			queues = append(queues, worker.QueueConfig{Name: fmt.Sprintf("idle%02d", i)})
		}
		cfg := fastConfig(queues...)
		cfg.Concurrency, cfg.Prefetch = 1, 2
		if _, err := c.AddMany(ctx, "busy", slices.Repeat([]worker.JobSpec{{Type: "work"}}, 5)); err != nil {
			t.Fatal(err)
		}
		starts := runStartOrder(t, b, cfg, func(int, *worker.Job) bool { return true })
		waitFor(t, 10*time.Second, "a job running and two leased ahead", func() bool {
			s, err := c.Stats(ctx, "busy")
			if err != nil {
				t.Fatal(err)
			}
			return len(starts.order()) == 1 && s.Active == 3
		})
		// Nothing is added meanwhile: the watcher out returns without a
		// wake at least once.
		time.Sleep(3 * worker.WatchFor)
		j := add(t, c, "idle00", worker.JobSpec{Type: "work"})
		waitState(t, c, "idle00", j.ID, worker.StateActive)
		close(starts.gate)
		waitCompleted(t, c, "busy", 5)
		waitCompleted(t, c, "idle00", 1)
	})
}
