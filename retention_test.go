package worker_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// TestMaintenanceRemovesBacklogInOneRound: a Manager's maintenance does not
// stop at one broker call's limit (1,000 jobs) per round: it calls again
// while the broker has more, so a backlog of completed jobs far above the
// count rule is gone long before the next round (here an hour away).
func TestMaintenanceRemovesBacklogInOneRound(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		const n, keep = 3500, 100
		ctx := context.Background()
		c := newClient(t, b)
		specs := make([]worker.JobSpec, 500)
		for i := range specs {
			specs[i] = worker.JobSpec{Type: "work"}
		}
		for range n / len(specs) {
			if _, err := c.AddMany(ctx, "default", specs); err != nil {
				t.Fatal(err)
			}
		}
		for done := 0; done < n; {
			jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "default", Limit: 500, LeaseDuration: time.Minute, WorkerID: "t"})
			if err != nil {
				t.Fatal(err)
			}
			ps := make([]*broker.JobCompleteParams, len(jobs))
			for i, j := range jobs {
				ps[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}}
			}
			errs, err := b.JobComplete(ctx, ps)
			if err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
				t.Fatalf("complete: %v, %v", errs, err)
			}
			done += len(jobs)
		}
		cfg := fastConfig()
		cfg.CompletedMaxCount = keep
		cfg.MaintainInterval = time.Hour // one round, at Start
		m := newManager(t, b, cfg)
		startManager(t, m)
		waitFor(t, 10*time.Second, "the completed jobs to be trimmed to the count rule", func() bool {
			st, err := c.Stats(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			return st.Completed == keep
		})
	})
}

// TestDeleteOnCompleteQueueAndJob: a queue configured with DeleteOnComplete
// and a job added with it are gone once processed; other jobs are kept.
func TestDeleteOnCompleteQueueAndJob(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		c := newClient(t, b)
		gone := add(t, c, "kept", worker.JobSpec{Type: "work", DeleteOnComplete: true})
		kept := add(t, c, "kept", worker.JobSpec{Type: "work"})
		byQueue := add(t, c, "transient", worker.JobSpec{Type: "work"})
		var completed atomic.Int64
		cfg := fastConfig(worker.QueueConfig{Name: "kept"}, worker.QueueConfig{Name: "transient", DeleteOnComplete: true})
		cfg.OnEvent = func(ev worker.Event) {
			if ev.Kind == worker.EventCompleted {
				completed.Add(1)
			}
		}
		m := newManager(t, b, cfg)
		_ = m.HandleFunc("work", func(context.Context, *worker.Job) error { return nil })
		startManager(t, m)
		waitFor(t, 10*time.Second, "3 jobs to complete", func() bool { return completed.Load() == 3 })
		for _, j := range []*worker.Job{gone, byQueue} {
			if _, err := c.Get(ctx, j.Queue, j.ID); !errors.Is(err, worker.ErrNotFound) {
				t.Errorf("job %s of queue %s after completion: %v, want ErrNotFound", j.ID, j.Queue, err)
			}
		}
		waitState(t, c, "kept", kept.ID, worker.StateCompleted)
	})
}
