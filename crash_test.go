package worker_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// The crash test re-executes the test binary as a worker process.
const (
	crashChildEnv  = "WORKER_CRASH_CHILD"
	crashURLEnv    = "WORKER_CRASH_REDIS_URL"
	crashPrefixEnv = "WORKER_CRASH_PREFIX"
	crashLease     = time.Second
)

// crashModeEnv, set to "cap", makes the worker process serve the fair,
// capped queue crash-cap instead (TestCrashSIGKILLFreesTenantSlots); set to
// "poison", the queue crash with MaxCrashes crashPoisonMax, where a
// "crash.exit" job ends the process (TestCrashPoisonQuarantined).
const crashModeEnv = "WORKER_CRASH_MODE"

const crashPoisonMax = 5 // the service's default (WORKER_MAX_CRASHES)

// crashChild is a worker process: it processes "crash.work" jobs (30 ms
// each, concurrency 10) until it is killed; in mode "cap", it holds the
// "crash.hold" jobs of queue crash-cap until it is stopped.
func crashChild() {
	b, err := redisbroker.Open(os.Getenv(crashURLEnv), redisbroker.Config{Prefix: os.Getenv(crashPrefixEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open broker:", err)
		os.Exit(2)
	}
	defer b.Close()
	queue := worker.QueueConfig{Name: "crash"}
	switch os.Getenv(crashModeEnv) {
	case "cap":
		queue = worker.QueueConfig{Name: "crash-cap", Fair: true}
	case "poison":
		queue.MaxCrashes = crashPoisonMax
	}
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:            []worker.QueueConfig{queue},
		Concurrency:       10,
		LeaseDuration:     crashLease,
		HeartbeatInterval: crashLease / 4,
		MaintainInterval:  100 * time.Millisecond,
		PollInterval:      10 * time.Millisecond,
		Logger:            discardLogger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: new manager:", err)
		os.Exit(2)
	}
	_ = m.HandleFunc("crash.work", func(ctx context.Context, j *worker.Job) error {
		select {
		case <-time.After(30 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	_ = m.HandleFunc("crash.hold", func(ctx context.Context, j *worker.Job) error {
		<-ctx.Done()
		return ctx.Err()
	})
	_ = m.HandleFunc("crash.exit", func(ctx context.Context, j *worker.Job) error {
		os.Exit(3) // as a processor that crashes its process would
		return nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
}

func startCrashChild(t *testing.T, url, prefix string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := crashCmd(t, url, prefix, env...)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// startWatchedCrashChild is startCrashChild for a process that may exit on
// its own: the returned channel is closed when it has.
func startWatchedCrashChild(t *testing.T, url, prefix string, env ...string) <-chan struct{} {
	t.Helper()
	cmd := crashCmd(t, url, prefix, env...)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return done
}

// crashCmd starts the test binary as a worker process (crashChild).
func crashCmd(t *testing.T, url, prefix string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashURLEnv+"="+url, crashPrefixEnv+"="+prefix)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker process: %v", err)
	}
	return cmd
}

// crashSetup gives a crash test a broker and a client on a fresh prefix of
// the shared Redis, and the URL and prefix for its worker processes.
func crashSetup(t *testing.T) (url, prefix string, b *redisbroker.Broker, c *worker.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	url, prefix = redistest.URL(t), redistest.Prefix(t)
	b, err := redisbroker.Open(url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return url, prefix, b, newClient(t, b)
}

// addCrashWork adds n "crash.work" jobs to queue crash, 1,000 per AddMany.
func addCrashWork(t *testing.T, c *worker.Client, n int) {
	t.Helper()
	specs := make([]worker.JobSpec, 1000)
	for i := range specs {
		specs[i] = worker.JobSpec{Type: "crash.work", MaxAttempts: 3}
	}
	for added := 0; added < n; added += len(specs) {
		if _, err := c.AddMany(context.Background(), "crash", specs[:min(len(specs), n-added)]); err != nil {
			t.Fatal(err)
		}
	}
}

// killMidway SIGKILLs the worker process once it has completed done jobs
// while others run, and returns the jobs it held then (the orphans).
func killMidway(t *testing.T, c *worker.Client, child *exec.Cmd, done int64) []*worker.Job {
	t.Helper()
	ctx := context.Background()
	waitFor(t, 30*time.Second, fmt.Sprintf("the worker to complete %d jobs", done), func() bool {
		s, err := c.Stats(ctx, "crash")
		return err == nil && s.Completed >= done && s.Active > 0
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	// Whatever is active now was held by the dead process.
	orphans, err := c.List(ctx, worker.ListParams{Queue: "crash", State: worker.StateActive, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans.Jobs) == 0 {
		t.Fatal("no job was running when the worker was killed; the test proves nothing")
	}
	return orphans.Jobs
}

// TestCrashSIGKILLLosesNoJobs kills a worker process with SIGKILL in the
// middle of a batch; a second process finishes the work. No job may be
// lost, and the jobs the killed worker held run again once their leases
// expire.
func TestCrashSIGKILLLosesNoJobs(t *testing.T) {
	url, prefix, _, c := crashSetup(t)
	ctx := context.Background()
	const total = 600
	addCrashWork(t, c, total)
	orphans := killMidway(t, c, startCrashChild(t, url, prefix), 100)
	killedAt := time.Now()

	startCrashChild(t, url, prefix)
	waitFor(t, 60*time.Second, "all jobs to finish", func() bool {
		s, err := c.Stats(ctx, "crash")
		return err == nil && s.Completed+s.Dead == total
	})
	s, err := c.Stats(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	lost := total - s.Completed
	var recovery time.Duration
	for _, o := range orphans {
		j, err := c.Get(ctx, "crash", o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != worker.StateCompleted || j.Attempt < 2 {
			t.Errorf("orphaned job %s: state %s attempt %d; want completed on a later attempt", j.ID, j.State, j.Attempt)
		}
		recovery = max(recovery, j.StartedAt.Sub(killedAt))
	}
	t.Logf("SIGKILL crash test: %d jobs, %d held by the killed worker, lost %d, dead %d; the orphans ran again at most %v after the kill (lease %v)",
		total, len(orphans), lost, s.Dead, recovery.Round(time.Millisecond), crashLease)
	if lost != 0 || s.Dead != 0 {
		t.Fatalf("lost %d jobs, %d dead", lost, s.Dead)
	}
}

// TestCrashOrphansKeepTheirPlace kills a worker process in the middle of a
// backlog of 40,000 jobs: once their leases expire, the jobs it held run
// before every job enqueued after them (an order check), so the crash costs
// them one lease, not the length of the backlog.
func TestCrashOrphansKeepTheirPlace(t *testing.T) {
	url, prefix, b, c := crashSetup(t)
	ctx := context.Background()
	const backlog = 40_000
	addCrashWork(t, c, backlog)
	orphans := map[string]bool{}
	for _, j := range killMidway(t, c, startCrashChild(t, url, prefix), 50) {
		orphans[j.ID] = true
	}
	// Recover the orphans as a Manager's maintenance would, then enqueue
	// more: the orphans must still come first.
	waitFor(t, 10*time.Second, "the orphans' leases to be recovered", func() bool {
		_, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "crash"})
		s, serr := c.Stats(ctx, "crash")
		return err == nil && serr == nil && s.Active == 0
	})
	addCrashWork(t, c, 100)

	cfg := fastConfig(worker.QueueConfig{Name: "crash"})
	cfg.Concurrency = 1 // runs in fetch order
	m := newManager(t, b, cfg)
	rec := recordType(m, "crash.work", jobID)
	startManager(t, m)
	ran := rec.first(t, len(orphans), 30*time.Second)
	for i, id := range ran {
		if !orphans[id] {
			t.Fatalf("job %s ran %d-th after the crash, before %d orphans of the killed worker; want the orphans first",
				id, i+1, len(orphans)-i)
		}
	}
	t.Logf("%d orphans of a worker killed in a backlog of %d jobs ran first after recovery", len(orphans), backlog)
}

// TestCrashSIGKILLFreesTenantSlots: a worker process holding a tenant's
// every slot of a capped queue is SIGKILLed; once its leases expire, a
// second process gets the same number of slots, the cap and no more, so
// the dead process leaked none.
func TestCrashSIGKILLFreesTenantSlots(t *testing.T) {
	url, prefix, _, c := crashSetup(t)
	ctx := context.Background()
	const q, limit = "crash-cap", 3
	if err := c.SetFairPolicy(ctx, &broker.FairPolicy{Queue: q, Fair: true, MaxActive: limit}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"t-a", "t-a", "t-a", "t-a", "t-a", "t-a", "t-b", "t-a", "t-b", "t-b", "t-b"} {
		tc, err := c.Tenant(tn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Add(ctx, q, worker.JobSpec{Type: "crash.hold", MaxAttempts: 5}); err != nil {
			t.Fatal(err)
		}
	}
	// held returns each tenant's active jobs, and the workers holding them.
	held := func() (map[string]int, map[string]bool) {
		l, err := c.List(ctx, worker.ListParams{Queue: q, State: worker.StateActive, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		per, workers := map[string]int{}, map[string]bool{}
		for _, j := range l.Jobs {
			per[j.TenantID]++
			workers[j.WorkerID] = true
		}
		return per, workers
	}
	first := startCrashChild(t, url, prefix, crashModeEnv+"=cap")
	waitFor(t, 30*time.Second, "the first worker to hold each tenant's cap", func() bool {
		per, _ := held()
		return per["t-a"] == limit && per["t-b"] == limit
	})
	_, dead := held()
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	startCrashChild(t, url, prefix, crashModeEnv+"=cap") // killed by its cleanup
	waitFor(t, 30*time.Second, "the second worker to hold each tenant's cap", func() bool {
		per, workers := held()
		for w := range workers {
			if dead[w] {
				return false // the killed worker's leases have not expired yet
			}
		}
		return per["t-a"] == limit && per["t-b"] == limit
	})
	per, _ := held()
	st, err := c.Stats(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if per["t-a"] != limit || per["t-b"] != limit || st.Active != 2*limit {
		t.Fatalf("after the kill the second worker holds %v (%d active); want %d of each tenant: its cap, no more", per, st.Active, limit)
	}
}

// TestCrashPoisonQuarantined: a job that ends its worker's process at every
// attempt is quarantined after MaxCrashes deaths in a row (dead, with the
// reason, attempts left unused) while the ordinary jobs around it all
// complete; each death is a real process exit and a new process recovers
// the lease, as a supervisor restarting the worker would.
func TestCrashPoisonQuarantined(t *testing.T) {
	url, prefix, _, c := crashSetup(t)
	ctx := context.Background()
	const work = 200
	// The ordinary jobs get the poison job's 10 attempts, not the 3 of
	// addCrashWork: each worker the poison job kills takes an attempt from
	// the jobs beside it, and after the second crash they and it are spread
	// over a random CrashSpread, so one of them can land beside it a third
	// time (more often on a loaded machine, where jobs run longer) and run
	// out of attempts. That is the attempts rule, not the quarantine this
	// test is about: an ordinary job is quarantined only after MaxCrashes.
	specs := slices.Repeat([]worker.JobSpec{{Type: "crash.work", MaxAttempts: 10}}, work)
	if _, err := c.AddMany(ctx, "crash", specs); err != nil {
		t.Fatal(err)
	}
	poison := add(t, c, "crash", worker.JobSpec{Type: "crash.exit", MaxAttempts: 10})
	exits := 0
	child := startWatchedCrashChild(t, url, prefix, crashModeEnv+"=poison")
	var j *worker.Job
	waitFor(t, 60*time.Second, "the poison job to be finished", func() bool {
		var err error
		if j, err = c.Get(ctx, "crash", poison.ID); err != nil {
			t.Fatal(err)
		}
		if j.State == worker.StateDead || j.State == worker.StateCompleted {
			return true
		}
		select {
		case <-child:
		default:
			return false
		}
		exits++
		child = startWatchedCrashChild(t, url, prefix, crashModeEnv+"=poison")
		return false
	})
	if want := broker.QuarantineReason(crashPoisonMax); j.State != worker.StateDead || j.LastError != want || j.Attempt != crashPoisonMax {
		t.Fatalf("poison job: state %s, attempt %d, last error %q; want dead on attempt %d with %q", j.State, j.Attempt, j.LastError, crashPoisonMax, want)
	}
	if exits != crashPoisonMax {
		t.Fatalf("the poison job ended %d worker processes; want %d (MaxCrashes)", exits, crashPoisonMax)
	}
	var s *worker.QueueStats
	waitFor(t, 60*time.Second, "the ordinary jobs to be finished", func() bool {
		var err error
		s, err = c.Stats(ctx, "crash")
		return err == nil && s.Completed+s.Dead == work+1
	})
	if s.Completed != work {
		t.Fatalf("%d of the %d ordinary jobs completed, %d dead; want all completed (the jobs that died beside the poison job are not quarantined with it)",
			s.Completed, work, s.Dead-1)
	}
}
