package worker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// A Manager serving many busy queues of equal priority visits them in a
// weighted turn; a queue a wake names (a job was added to it) gets the next
// turn among its priority, once per wake, so the new job does not wait for
// a round over every queue. These tests observe the order jobs run in,
// with one slot and one job per fetch, so each fetch is one job run.

// busyQueues makes n queues of equal priority holding perQueue "work"
// jobs each, and a Manager serving them one job at a time, each "work"
// job holding its slot for 2 ms (longer than the fetcher waits between
// two looks for wakes).
func busyQueues(t *testing.T, b broker.Broker, n, perQueue int) (*worker.Client, *worker.Manager, []string) {
	t.Helper()
	c := newClient(t, b)
	names := make([]string, n)
	qs := make([]worker.QueueConfig, n)
	specs := make([]worker.JobSpec, perQueue)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "work"}
	}
	for i := range names {
		names[i] = fmt.Sprintf("q%03d", i)
		qs[i] = worker.QueueConfig{Name: names[i]}
		if _, err := c.AddMany(context.Background(), names[i], specs); err != nil {
			t.Fatal(err)
		}
	}
	cfg := steadyConfig(qs...)
	cfg.Concurrency, cfg.FetchBatch, cfg.Prefetch = 1, 1, worker.PrefetchOff
	return c, newManager(t, b, cfg), names
}

// oneAtATime adds n "work" jobs to the queue backlog and returns a client
// and a started Manager serving qs (strict priority or weighted) one job
// at a time, whose "work" jobs each hold the slot for d, and ran, which
// returns the queues of the jobs run so far, in the order they ran.
func oneAtATime(t *testing.T, b broker.Broker, qs []worker.QueueConfig, strict bool, backlog string, n int, d time.Duration) (*worker.Client, func() []string) {
	t.Helper()
	c := newClient(t, b)
	specs := make([]worker.JobSpec, n)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "work"}
	}
	if _, err := c.AddMany(context.Background(), backlog, specs); err != nil {
		t.Fatal(err)
	}
	cfg := steadyConfig(qs...)
	cfg.Concurrency, cfg.FetchBatch, cfg.Prefetch = 1, 1, worker.PrefetchOff
	cfg.StrictPriority = strict
	m := newManager(t, b, cfg)
	var mu sync.Mutex
	var queues []string
	_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
		mu.Lock()
		queues = append(queues, j.Queue)
		mu.Unlock()
		time.Sleep(d) // the job's run time
		return nil
	})
	startManager(t, m)
	return c, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(queues) }
}

// TestAddedJobsTakeTheNextTurnsAmongBusyQueues: three jobs added at once,
// at priority 1 (ahead of their queue's backlog), to three of 100 busy
// queues each start within 15 jobs, also right after the Manager started,
// not at their queues' turns in a
// weighted round over the 100 (15 jobs or fewer by chance: about 15%
// each; for two of three jobs in each of three rounds, 1 in 100,000).
func TestAddedJobsTakeTheNextTurnsAmongBusyQueues(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c, m, names := busyQueues(t, b, 100, 6)
		var work atomic.Int64
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
			work.Add(1)
			time.Sleep(2 * time.Millisecond) // the job's run time
			return nil
		})
		var mu sync.Mutex
		startedAt := map[string]int64{} // urgent job's queue: work jobs run before it started
		_ = m.HandleFunc("urgent", func(ctx context.Context, j *worker.Job) error {
			mu.Lock()
			startedAt[j.Queue] = work.Load()
			mu.Unlock()
			return nil
		})
		startManager(t, m)
		// Round 0 comes right after Start: the wakes kept before it (the
		// backlog's, on Redis the wake channels' subscriptions) must not
		// count as new ones.
		for round := range 3 {
			targets := []string{names[(37*round+11)%100], names[(37*round+51)%100], names[(37*round+81)%100]}
			for _, q := range targets {
				add(t, c, q, worker.JobSpec{Type: "urgent", Priority: 1})
			}
			added := work.Load()
			waitFor(t, time.Minute, "the added jobs to start", func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, q := range targets {
					if _, ok := startedAt[q]; !ok {
						return false
					}
				}
				return true
			})
			mu.Lock()
			for _, q := range targets {
				if waited := startedAt[q] - added; waited > 15 {
					t.Errorf("round %d: the job added to %s started after %d other jobs, want at most 15 (its queue takes the next turns, not its turn in a round over 100 queues)",
						round, q, waited)
				}
			}
			mu.Unlock()
		}
	})
}

// TestWokenQueuesLeaveTurnsToTheOthers: a queue whose jobs keep coming is
// woken again and again, but takes at most every other turn ahead of its
// own, so an equal queue with a backlog still runs about a quarter of the
// jobs (half of the turns by weight): at least 10 of 100 (a quarter
// gives 25, 10 or fewer by chance 1 in 5,000), not none.
func TestWokenQueuesLeaveTurnsToTheOthers(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c, ran := oneAtATime(t, b, []worker.QueueConfig{{Name: "hot"}, {Name: "cold"}}, false, "cold", 500, 2*time.Millisecond)
		// Jobs keep coming to hot, faster than one per job run.
		ctx, stop := context.WithCancel(context.Background())
		var adds sync.WaitGroup
		adds.Go(func() {
			for ctx.Err() == nil {
				if _, err := c.Add(ctx, "hot", worker.JobSpec{Type: "work"}); err != nil && ctx.Err() == nil {
					t.Errorf("add a job to hot: %v", err)
					return
				}
			}
		})
		defer adds.Wait()
		defer stop()
		// From the first job of hot on, 100 jobs.
		var from int
		waitFor(t, time.Minute, "a job of hot to run", func() bool {
			from = slices.Index(ran(), "hot")
			return from >= 0
		})
		waitFor(t, time.Minute, "100 more jobs to run", func() bool { return len(ran()) >= from+100 })
		stop()
		cold := 0
		for _, q := range ran()[from : from+100] {
			if q == "cold" {
				cold++
			}
		}
		if cold < 10 {
			t.Errorf("cold (a backlog, same priority) ran %d of the 100 jobs after hot's jobs began to come, want at least 10: a queue woken again and again must not take every turn", cold)
		}
		t.Logf("cold ran %d of 100 jobs", cold)
	})
}

// TestWokenQueueKeepsToItsPriority: a wake gives a queue the next turn
// among the queues of its own priority only. Strict, a job added to the
// priority-4 queue while the priority-1 queue has a backlog runs after
// that backlog.
func TestWokenQueueKeepsToItsPriority(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c, ran := oneAtATime(t, b, []worker.QueueConfig{{Name: "reports", Priority: 4}, {Name: "invoices", Priority: 1}}, true, "invoices", 100, time.Millisecond)
		count := func() int { return len(ran()) }
		waitFor(t, time.Minute, "5 jobs to run", func() bool { return count() >= 5 })
		add(t, c, "reports", worker.JobSpec{Type: "work"})
		waitFor(t, time.Minute, "101 jobs to run", func() bool { return count() >= 101 })
		if at := slices.Index(ran(), "reports"); at != 100 {
			t.Errorf("the job added to reports (priority 4) ran %dth, want last, after the 100 of invoices (priority 1): a wake must not lift a queue above its priority", at+1)
		}
	})
}
