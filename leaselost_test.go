package worker_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/logtest"
	"github.com/aibos/worker/internal/testbroker"
)

// leaseLostJobsEnv overrides how many jobs TestNoFalseLeaseLostWarnings
// runs: 50,000 (about 5 s with -race), 5,000 with -short.
const leaseLostJobsEnv = "WORKER_LEASELOST_JOBS"

const leaseLostMsg = "lease lost; cancelling job"

// Fast jobs whose leases the heartbeat extends every 2 ms race their own
// acknowledgements all the time: the heartbeat must never warn of a lease
// loss for a job this worker already completed. A job whose lease is really
// taken (cancelled) still warns. The run must show the race happened (debug
// lines), or it proves nothing.
func TestNoFalseLeaseLostWarnings(t *testing.T) {
	n := 50_000
	if testing.Short() {
		n = 5000
	}
	if v := os.Getenv(leaseLostJobsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number of jobs", leaseLostJobsEnv, v)
		}
	}
	b := testbroker.Redis(t)
	c := newClient(t, b)
	logger, logs := logtest.NewLogger()
	cfg := fastConfig()
	cfg.Concurrency = 64
	cfg.FetchBatch = 64
	cfg.LeaseDuration = 5 * time.Second
	cfg.HeartbeatInterval = 2 * time.Millisecond
	cfg.Logger = logger
	m := newManager(t, b, cfg)
	var done sync.WaitGroup
	done.Add(n)
	_ = m.HandleFunc("fast", func(ctx context.Context, j *worker.Job) error {
		done.Done()
		return nil
	})
	cancelled := make(chan error, 1)
	_ = m.HandleFunc("long", func(ctx context.Context, j *worker.Job) error {
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
		return ctx.Err()
	})
	ctx := context.Background()
	specs := make([]worker.JobSpec, 1000)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "fast"}
	}
	for added := 0; added < n; added += len(specs) {
		if _, err := c.AddMany(ctx, "default", specs[:min(len(specs), n-added)]); err != nil {
			t.Fatal(err)
		}
	}
	startManager(t, m)
	waitDone(t, &done, 2*time.Minute)
	// Retention keeps only the newest completed jobs: wait for none to be
	// left unfinished instead of counting them.
	waitFor(t, 30*time.Second, "every completion to be acknowledged", func() bool {
		s, err := c.Stats(ctx, "default")
		return err == nil && s.Unfinished() == 0
	})
	if s, err := c.Stats(ctx, "default"); err != nil || s.Dead != 0 {
		t.Fatalf("stats after the run: %+v, %v; want no dead job", s, err)
	}
	races := logs.Count("lease gone after the job finished; not a lease loss")
	if got := logs.Count(leaseLostMsg); got != 0 {
		t.Fatalf("%d false %q warnings for %d completed jobs (%d races)", got, leaseLostMsg, n, races)
	}
	if races == 0 {
		t.Fatal("the heartbeat never raced an acknowledgement: the run cannot tell a false warning from none")
	}
	t.Logf("%d jobs, %d heartbeats found a lease the worker had just given up, 0 warnings", n, races)

	j := add(t, c, "default", worker.JobSpec{Type: "long"})
	waitState(t, c, "default", j.ID, worker.StateActive)
	if _, err := c.Cancel(ctx, "default", j.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-cancelled:
		if !errors.Is(cause, worker.ErrLeaseLost) {
			t.Fatalf("cancelled job's context cause = %v, want ErrLeaseLost", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled job's processor was not stopped")
	}
	if got := logs.Count(leaseLostMsg); got != 1 {
		t.Fatalf("%d %q warnings after one job's lease was really taken, want 1", got, leaseLostMsg)
	}
}

// waitDone waits for wg, failing the test after timeout.
func waitDone(t *testing.T, wg *sync.WaitGroup, timeout time.Duration) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("jobs not all run within %v", timeout)
	}
}
