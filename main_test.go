package worker_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(redistest.Main(m))
}

// eachEngine runs f against every broker, in parallel.
func eachEngine(t *testing.T, f func(t *testing.T, b broker.Broker)) { testbroker.Each(t, f) }

// fastConfig is a Manager config with short intervals for tests.
func fastConfig(queues ...worker.QueueConfig) worker.ManagerConfig {
	if len(queues) == 0 {
		queues = []worker.QueueConfig{{Name: "default"}}
	}
	return worker.ManagerConfig{
		Queues:           queues,
		Concurrency:      4,
		PollInterval:     10 * time.Millisecond,
		MaintainInterval: 50 * time.Millisecond,
		ShutdownTimeout:  5 * time.Second,
		Retry:            retryFast,
		Logger:           discardLogger,
	}
}

// steadyConfig is fastConfig for tests that need no maintenance (no
// delays, retries or expired leases), with MaintainInterval at its
// default. At fastConfig's 50 ms every round is a synchronous SQLite
// transaction over the whole queue; under -race on a loaded machine a
// round outlasts the interval, so rounds run back to back, take most of
// the CPU and the store's one write lock, and the jobs crawl.
func steadyConfig(queues ...worker.QueueConfig) worker.ManagerConfig {
	cfg := fastConfig(queues...)
	cfg.MaintainInterval = 0
	return cfg
}

// waitCompleted waits until queue holds n completed jobs, failing if the
// count stalls for a minute: a loaded machine slows the jobs, a hang stops
// them.
func waitCompleted(t *testing.T, c *worker.Client, queue string, n int) {
	t.Helper()
	testwait.Progress(t, time.Minute, fmt.Sprintf("%d jobs of %s to complete", n, queue), n, func() int {
		s, err := c.Stats(context.Background(), queue)
		if err != nil {
			t.Fatalf("stats of %s: %v", queue, err)
		}
		return int(s.Completed)
	})
}

// startManager starts m and shuts it down when the test ends.
func startManager(t testing.TB, m *worker.Manager) {
	t.Helper()
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("start manager: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, timeout, what, cond)
}

// waitState waits until a job is in state want and returns it.
func waitState(t *testing.T, c *worker.Client, queue, id string, want worker.State) *worker.Job {
	t.Helper()
	var j *worker.Job
	waitFor(t, 10*time.Second, "job "+id+" to be "+string(want), func() bool {
		var err error
		j, err = c.Get(context.Background(), queue, id)
		if err != nil {
			t.Fatalf("get job: %v", err)
		}
		return j.State == want
	})
	return j
}

// recorder records a key of every "work" job a Manager runs, in run order.
type recorder struct {
	mu  sync.Mutex
	got []string
}

// recordWork registers on m the processor of type "work", which records
// key(job) for each job it runs.
func recordWork(m *worker.Manager, key func(*worker.Job) string) *recorder {
	return recordType(m, "work", key)
}

// recordType is recordWork for jobs of type typ.
func recordType(m *worker.Manager, typ string, key func(*worker.Job) string) *recorder {
	r := &recorder{}
	_ = m.HandleFunc(typ, func(ctx context.Context, j *worker.Job) error {
		r.mu.Lock()
		r.got = append(r.got, key(j))
		r.mu.Unlock()
		return nil
	})
	return r
}

// first waits until n jobs have run, failing if none runs for stall, then
// returns the keys of the first n.
func (r *recorder) first(t *testing.T, n int, stall time.Duration) []string {
	t.Helper()
	testwait.Progress(t, stall, fmt.Sprintf("%d jobs to run", n), n, r.count)
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[:n])
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func jobQueue(j *worker.Job) string { return j.Queue }
func jobID(j *worker.Job) string    { return j.ID }
