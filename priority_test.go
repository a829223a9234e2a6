package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// The seed's queues: invoices is the most urgent, reports the least.
var seedQueues = []worker.QueueConfig{
	{Name: "invoices", Priority: 1, Concurrency: 3},
	{Name: "bills", Priority: 2, Concurrency: 2},
	{Name: "payments", Priority: 3, Concurrency: 5},
	{Name: "reports", Priority: 4, Concurrency: 1},
}

// TestQueueWeights pins the documented formula: weight = max + 1 - priority
// over the configured queues, priority 0 meaning broker.DefaultPriority.
func TestQueueWeights(t *testing.T) {
	for _, c := range []struct {
		name  string
		prios []int
		want  []int
		err   string
	}{
		{"the seed's 1..4", []int{1, 2, 3, 4}, []int{4, 3, 2, 1}, ""},
		{"one queue", []int{1}, []int{1}, ""},
		{"none set: all the default", []int{0, 0}, []int{1, 1}, ""},
		{"unset is the default 3", []int{0, 1}, []int{1, 3}, ""},
		{"unset next to a less urgent one", []int{0, 4}, []int{2, 1}, ""},
		{"equal priorities share equally", []int{5, 5, 9}, []int{5, 5, 1}, ""},
		{"the whole range", []int{broker.MinPriority, broker.MaxPriority}, []int{broker.MaxPriority, 1}, ""},
		{"negative", []int{1, -1}, nil, "priority -1 is outside [1, 1000]"},
		{"above the range", []int{broker.MaxPriority + 1}, nil, "priority 1001 is outside [1, 1000]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			qs := make([]worker.QueueConfig, len(c.prios))
			for i, p := range c.prios {
				qs[i] = worker.QueueConfig{Name: "q" + string(rune('a'+i)), Priority: p}
			}
			got, err := worker.QueueWeights(qs)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("weights of priorities %v: error %v, want one containing %q", c.prios, err, c.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("weights of priorities %v = %v, %v; want %v", c.prios, got, err, c.want)
			}
		})
	}
}

// TestSeedQueuesInvoicesGetTheLargestShare: with the seed's config and the
// default weighted scheduling, invoices (priority 1) gets the largest share
// of a busy Manager's work, and every queue is still served.
func TestSeedQueuesInvoicesGetTheLargestShare(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		const sample = 1000 // jobs observed; each queue holds more than that
		c := newClient(t, b)
		cfg := steadyConfig(seedQueues...)
		cfg.Concurrency, cfg.FetchBatch = 1, 1 // one job per poll: the share is the scheduler's alone
		m := newManager(t, b, cfg)
		rec := recordWork(m, jobQueue)
		specs := make([]worker.JobSpec, 1000)
		for i := range specs {
			specs[i] = worker.JobSpec{Type: "work"}
		}
		for _, q := range seedQueues {
			for range sample / len(specs) {
				if _, err := c.AddMany(context.Background(), q.Name, specs); err != nil {
					t.Fatal(err)
				}
			}
		}
		startManager(t, m)
		share := map[string]int{}
		for _, q := range rec.first(t, sample, time.Minute) {
			share[q]++
		}
		t.Logf("queues of the first %d jobs run: %v", sample, share)
		// Weights 4:3:2:1 give about 400, 300, 200 and 100 of 1,000; the
		// closest pair (invoices, bills) is 3.8 standard deviations apart.
		for _, q := range seedQueues[1:] {
			if share["invoices"] <= share[q.Name] {
				t.Errorf("invoices (priority 1) ran %d of the first %d jobs, %s (priority %d) %d: invoices must get the largest share (shares %v)",
					share["invoices"], sample, q.Name, q.Priority, share[q.Name], share)
			}
			if share[q.Name] == 0 {
				t.Errorf("%s ran none of the first %d jobs: weighted scheduling must serve every queue (shares %v)", q.Name, sample, share)
			}
		}
	})
}

// TestJobPriorityOneRunsFirst: within a queue, a job with priority 1 runs
// before one that sets none (the default, 3), which runs before priority 4.
func TestJobPriorityOneRunsFirst(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		later := add(t, c, "default", worker.JobSpec{Type: "work", Priority: 4})
		normal := add(t, c, "default", worker.JobSpec{Type: "work"})
		urgent := add(t, c, "default", worker.JobSpec{Type: "work", Priority: 1})
		if normal.Priority != broker.DefaultPriority {
			t.Fatalf("a job added with no priority has priority %d, want the default %d", normal.Priority, broker.DefaultPriority)
		}
		cfg := fastConfig()
		cfg.Concurrency = 1
		m := newManager(t, b, cfg)
		rec := recordWork(m, jobID)
		startManager(t, m)
		order := rec.first(t, 3, 10*time.Second)
		if want := []string{urgent.ID, normal.ID, later.ID}; !slices.Equal(order, want) {
			t.Fatalf("run order %v, want priority 1, then the default, then 4: %v", order, want)
		}
	})
}
