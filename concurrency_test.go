package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
)

// gatedLoad is a processor whose jobs block until release is closed, and
// which records what a user of SetConcurrency would notice: how many run
// at once, which jobs ran how often, and whether any was cancelled.
type gatedLoad struct {
	step    chan struct{} // each send lets one job finish
	release chan struct{} // closed: every job finishes
	running atomic.Int64  // jobs inside the processor now
	// lowered, once set, is the limit every job starting afterwards must
	// respect; over counts the jobs that started above it.
	lowered atomic.Int64
	over    atomic.Int64

	mu        sync.Mutex
	runs      map[string]int // job id → times run
	cancelled int            // jobs whose context ended while they ran
	outcomes  map[worker.EventKind]int
}

func newGatedLoad() *gatedLoad {
	return &gatedLoad{step: make(chan struct{}), release: make(chan struct{}), runs: map[string]int{}, outcomes: map[worker.EventKind]int{}}
}

func (g *gatedLoad) process(ctx context.Context, j *worker.Job) error {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	if lim := g.lowered.Load(); lim > 0 && n > lim {
		g.over.Add(1)
	}
	g.mu.Lock()
	g.runs[j.ID]++
	g.mu.Unlock()
	select {
	case <-g.step:
		return nil
	case <-g.release:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		g.cancelled++
		g.mu.Unlock()
		return ctx.Err()
	}
}

func (g *gatedLoad) observe(e worker.Event) {
	if e.Kind == worker.EventStarted {
		return
	}
	g.mu.Lock()
	g.outcomes[e.Kind]++
	g.mu.Unlock()
}

func (g *gatedLoad) completed() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.outcomes[worker.EventCompleted]
}

// TestSetConcurrencyUnderLoad raises and lowers a running Manager's
// concurrency while its jobs block: raising starts more of the waiting
// jobs at once; lowering lets the running ones finish (none cancelled,
// handed back or run twice) and starts no job while the new limit is
// reached. With Prefetch, leased jobs wait in memory for a slot, so the
// raise must wake them.
func TestSetConcurrencyUnderLoad(t *testing.T) {
	for _, prefetch := range []int{worker.PrefetchOff, 4} {
		t.Run(fmt.Sprintf("prefetch=%d", prefetch), func(t *testing.T) {
			t.Parallel()
			const jobs = 30
			b := testbroker.SQLite(t)
			g := newGatedLoad()
			cfg := fastConfig()
			cfg.Concurrency, cfg.Prefetch, cfg.OnEvent = 2, prefetch, g.observe
			m, err := worker.NewManager(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.HandleFunc("work", g.process); err != nil {
				t.Fatal(err)
			}
			c, err := worker.NewClient(b, worker.ClientConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for range jobs {
				if _, err := c.Add(context.Background(), "default", worker.JobSpec{Type: "work"}); err != nil {
					t.Fatal(err)
				}
			}
			startManager(t, m)
			running := func(n int64) func() bool { return func() bool { return g.running.Load() == n } }

			waitFor(t, 10*time.Second, "2 jobs running at concurrency 2", running(2))
			if err := m.SetConcurrency(6); err != nil {
				t.Fatal(err)
			}
			if got := m.Concurrency(); got != 6 {
				t.Fatalf("Concurrency() after SetConcurrency(6) = %d", got)
			}
			waitFor(t, 10*time.Second, "6 jobs running after raising concurrency to 6", running(6))
			if busy := m.Busy(); busy != 6 {
				t.Fatalf("Busy() = %d with 6 jobs running", busy)
			}
			// With Prefetch, wait for the jobs leased to wait for a slot:
			// lowering must keep them waiting.
			ahead := max(prefetch, 0)
			waitFor(t, 10*time.Second, fmt.Sprintf("%d jobs leased", 6+ahead), func() bool {
				st, err := c.Stats(context.Background(), "default")
				if err != nil {
					t.Fatal(err)
				}
				return st.Active == int64(6+ahead)
			})

			// Every slot is taken, so no job is between admission and its
			// processor: any job that starts from here on was admitted under
			// the lowered limit.
			g.lowered.Store(1)
			if err := m.SetConcurrency(1); err != nil {
				t.Fatal(err)
			}
			if got := g.running.Load(); got != 6 {
				t.Fatalf("%d jobs running right after lowering to 1, want the 6 that ran to go on", got)
			}
			// Let the 6 finish one by one: a job admitted above the new
			// limit would start while the others still run.
			for i := 1; i <= 6; i++ {
				g.step <- struct{}{}
				waitFor(t, 10*time.Second, fmt.Sprintf("%d jobs completed", i), func() bool { return g.completed() >= i })
			}
			close(g.release)
			waitFor(t, 30*time.Second, fmt.Sprintf("%d jobs completed", jobs), func() bool { return g.completed() == jobs })

			g.mu.Lock()
			defer g.mu.Unlock()
			if g.cancelled != 0 {
				t.Errorf("%d running jobs were cancelled by the change of concurrency, want 0", g.cancelled)
			}
			if n := g.over.Load(); n != 0 {
				t.Errorf("%d jobs started while 1 or more ran after lowering concurrency to 1", n)
			}
			if len(g.runs) != jobs {
				t.Errorf("%d distinct jobs ran, want %d", len(g.runs), jobs)
			}
			for id, n := range g.runs {
				if n != 1 {
					t.Errorf("job %s ran %d times, want once", id, n)
				}
			}
			if len(g.outcomes) != 1 {
				t.Errorf("job outcomes %v, want only %d completed", g.outcomes, jobs)
			}
		})
	}
}

// TestSetConcurrencyKeepsQueueCaps: a queue's own Concurrency stays its cap
// when the Manager's is raised past it, and a queue configured without one
// follows the Manager's.
func TestSetConcurrencyKeepsQueueCaps(t *testing.T) {
	b := testbroker.SQLite(t)
	release := make(chan struct{})
	var mu sync.Mutex
	now, peak := map[string]int{}, map[string]int{}
	cfg := fastConfig(worker.QueueConfig{Name: "capped", Concurrency: 3}, worker.QueueConfig{Name: "open"})
	cfg.Concurrency = 2
	m, err := worker.NewManager(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
		mu.Lock()
		now[j.Queue]++
		peak[j.Queue] = max(peak[j.Queue], now[j.Queue])
		mu.Unlock()
		defer func() { mu.Lock(); now[j.Queue]--; mu.Unlock() }()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// 12 capped jobs could fill the raised limit but for their cap; the 5
	// open ones all fit beside the capped 3.
	for q, n := range map[string]int{"capped": 12, "open": 5} {
		for range n {
			if _, err := c.Add(context.Background(), q, worker.JobSpec{Type: "work"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	startManager(t, m)
	defer close(release)
	waitFor(t, 10*time.Second, "2 jobs running", func() bool { return m.Busy() == 2 })
	if err := m.SetConcurrency(10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "3 capped and 5 open jobs running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return now["capped"] == 3 && now["open"] == 5
	})
	mu.Lock()
	defer mu.Unlock()
	if peak["capped"] > 3 {
		t.Fatalf("queue capped at 3 ran %d jobs at once", peak["capped"])
	}
}

func TestSetConcurrencyRejectsBelowOne(t *testing.T) {
	m, err := worker.NewManager(testbroker.SQLite(t), fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -3} {
		err := m.SetConcurrency(n)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("concurrency %d is below 1", n)) {
			t.Errorf("SetConcurrency(%d) = %v, want an error naming %d as below 1", n, err, n)
		}
	}
	if got := m.Concurrency(); got != 4 {
		t.Fatalf("Concurrency() = %d after rejected changes, want the configured 4", got)
	}
}
