package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
)

// outageSlack is how long past its deadline a call may take to return: far
// more than returning needs, far less than go-redis's retries took before
// calls honoured deadlines (3 s with Redis down, 5 s to 40 s with it hung).
const outageSlack = 1500 * time.Millisecond

// During a Redis outage, down (killed) or hung (SIGSTOP), Add returns an
// error by the caller's deadline, by the Client's Timeout when the caller
// has none, and when many adds are combined into one batch; once Redis is
// back, every job is either stored whole or not at all.
func TestAddDuringOutageHonoursDeadlines(t *testing.T) {
	for _, mode := range []string{"down", "hung"} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Options{Dir: t.TempDir(), Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
			b, err := broker.Open(context.Background(), srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			c, err := worker.NewClient(b, worker.ClientConfig{Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			add(t, c, "q", worker.JobSpec{Type: "before"})
			if mode == "down" {
				srv.Kill()
			} else {
				srv.Freeze(t)
			}

			data := json.RawMessage(`{"n":1}`)
			// try adds job id under ctx, which has a deadline, and checks it
			// fails by then (give or take outageSlack).
			try := func(ctx context.Context, id string) {
				_, err := c.Add(ctx, "q", worker.JobSpec{ID: id, Type: "during", Data: data})
				deadline, _ := ctx.Deadline()
				switch late := time.Since(deadline); {
				case err == nil:
					t.Errorf("add %s with Redis %s: no error", id, mode)
				case late > outageSlack:
					t.Errorf("add %s with Redis %s returned %v after its deadline: %v", id, mode, late, err)
				}
			}
			ids := []string{"short", "unbounded"}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			try(ctx, "short")
			cancel()

			// No deadline of the caller's: the Client's Timeout bounds it.
			start := time.Now()
			_, err = c.Add(context.Background(), "q", worker.JobSpec{ID: "unbounded", Type: "during", Data: data})
			if took := time.Since(start); err == nil || took > 500*time.Millisecond+outageSlack {
				t.Errorf("add with no deadline, Redis %s: %v after %v; want an error by the Client's 500ms timeout", mode, err, took)
			}

			var wg sync.WaitGroup
			for i := range 20 { // concurrent adds: combined into batches
				id := fmt.Sprintf("batch-%d", i)
				ids = append(ids, id)
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
					defer cancel()
					try(ctx, id)
				}()
			}
			wg.Wait()

			if mode == "down" {
				srv.Restart(t)
			} else {
				srv.Thaw(t)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			waitFor(t, 10*time.Second, "Redis to answer again", func() bool { return b.Ping(ctx) == nil })
			for _, id := range ids {
				j, err := c.Get(ctx, "q", id)
				if errors.Is(err, worker.ErrNotFound) {
					continue
				}
				if err != nil || j.Type != "during" || string(j.Data) != string(data) || j.State != worker.StatePending {
					t.Errorf("job %s after the outage: %+v, %v; want it whole or absent", id, j, err)
				}
			}
		})
	}
}
