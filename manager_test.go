package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/retry"
)

var (
	retryFast     = retry.Policy{BaseDelay: 10 * time.Millisecond, Multiplier: 2, MaxDelay: 50 * time.Millisecond}
	discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func newClient(t testing.TB, b broker.Broker) *worker.Client {
	t.Helper()
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newManager(t testing.TB, b broker.Broker, cfg worker.ManagerConfig) *worker.Manager {
	t.Helper()
	m, err := worker.NewManager(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func add(t *testing.T, c *worker.Client, queue string, spec worker.JobSpec) *worker.Job {
	t.Helper()
	j, err := c.Add(context.Background(), queue, spec)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	return j
}

func TestProcessesJobsWithResultAndTenant(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		var seen sync.Map
		_ = m.HandleFunc("invoice.processing", func(ctx context.Context, j *worker.Job) error {
			var in struct{ InvoiceID string }
			if err := worker.Decode(j, &in); err != nil {
				return err
			}
			seen.Store(j.ID, j.TenantID)
			return worker.SetResult(ctx, map[string]string{"posted": in.InvoiceID})
		})
		var ids []string
		for i, tenant := range []string{"t1", "t2", "t1"} {
			j := add(t, c, "default", worker.JobSpec{Type: "invoice.processing", TenantID: tenant, Data: map[string]string{"invoiceId": "inv_" + string(rune('a'+i))}})
			ids = append(ids, j.ID)
		}
		startManager(t, m)
		for i, id := range ids {
			j := waitState(t, c, "default", id, worker.StateCompleted)
			if want := `{"posted":"inv_` + string(rune('a'+i)) + `"}`; string(j.Result) != want {
				t.Errorf("result = %s, want %s", j.Result, want)
			}
			if got, _ := seen.Load(id); got != j.TenantID {
				t.Errorf("processor saw tenant %v, job has %q", got, j.TenantID)
			}
		}
	})
}

func TestRetryThenSucceed(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		var calls atomic.Int32
		_ = m.HandleFunc("flaky", func(ctx context.Context, j *worker.Job) error {
			if calls.Add(1) <= 2 {
				return errors.New("database is busy")
			}
			return nil
		})
		j := add(t, c, "default", worker.JobSpec{Type: "flaky", MaxAttempts: 5})
		startManager(t, m)
		got := waitState(t, c, "default", j.ID, worker.StateCompleted)
		if got.Attempt != 3 || calls.Load() != 3 {
			t.Fatalf("attempt = %d, calls = %d; want 3 and 3", got.Attempt, calls.Load())
		}
		if !strings.Contains(got.LastError, "database is busy") {
			t.Errorf("last error %q does not record the failure", got.LastError)
		}
	})
}

func TestRetryUntilDead(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		var calls atomic.Int32
		_ = m.HandleFunc("broken", func(ctx context.Context, j *worker.Job) error {
			calls.Add(1)
			return errors.New("always fails")
		})
		j := add(t, c, "default", worker.JobSpec{Type: "broken", MaxAttempts: 3})
		startManager(t, m)
		got := waitState(t, c, "default", j.ID, worker.StateDead)
		if got.Attempt != 3 || calls.Load() != 3 {
			t.Fatalf("attempt = %d, calls = %d; want 3 and 3", got.Attempt, calls.Load())
		}
	})
}

func TestNoRetryAndRetryAfter(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		_ = m.HandleFunc("bad-payload", func(ctx context.Context, j *worker.Job) error {
			return worker.NoRetry(errors.New("payload has no invoice id"))
		})
		var lastStart sync.Map
		_ = m.HandleFunc("rate-limited", func(ctx context.Context, j *worker.Job) error {
			lastStart.Store(j.Attempt, j.StartedAt)
			if j.Attempt == 1 {
				return worker.RetryAfter(400*time.Millisecond, errors.New("429 from bank api"))
			}
			return nil
		})
		bad := add(t, c, "default", worker.JobSpec{Type: "bad-payload", MaxAttempts: 5})
		rl := add(t, c, "default", worker.JobSpec{Type: "rate-limited", MaxAttempts: 5})
		startManager(t, m)
		if got := waitState(t, c, "default", bad.ID, worker.StateDead); got.Attempt != 1 {
			t.Errorf("NoRetry job attempt = %d, want 1 (dead at once)", got.Attempt)
		}
		waitState(t, c, "default", rl.ID, worker.StateCompleted)
		s1, _ := lastStart.Load(1)
		s2, _ := lastStart.Load(2)
		if gap := s2.(time.Time).Sub(s1.(time.Time)); gap < 400*time.Millisecond {
			t.Errorf("RetryAfter(400ms) retried after %v", gap)
		}
	})
}

func TestPanicIsFailedAttemptWithStack(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		_ = m.HandleFunc("panics", func(ctx context.Context, j *worker.Job) error {
			var m map[string]int
			//lint:ignore SA5000 the test needs a runtime panic, not an explicit one
			m["boom"]++
			return nil
		})
		_ = m.HandleFunc("fine", func(ctx context.Context, j *worker.Job) error { return nil })
		p := add(t, c, "default", worker.JobSpec{Type: "panics", MaxAttempts: 2})
		startManager(t, m)
		got := waitState(t, c, "default", p.ID, worker.StateDead)
		if !strings.Contains(got.LastError, "panic: assignment to entry in nil map") || !strings.Contains(got.LastError, "goroutine ") {
			t.Errorf("last error does not record the panic and its stack: %q", got.LastError)
		}
		// The worker lives on.
		f := add(t, c, "default", worker.JobSpec{Type: "fine"})
		waitState(t, c, "default", f.ID, worker.StateCompleted)
	})
}

func TestTimeoutCancelsContext(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		_ = m.HandleFunc("slow", func(ctx context.Context, j *worker.Job) error {
			<-ctx.Done()
			return ctx.Err()
		})
		j := add(t, c, "default", worker.JobSpec{Type: "slow", MaxAttempts: 1, Timeout: 100 * time.Millisecond})
		startManager(t, m)
		got := waitState(t, c, "default", j.ID, worker.StateDead)
		if !strings.Contains(got.LastError, "timed out after 100ms") {
			t.Errorf("last error %q does not say the job timed out", got.LastError)
		}
	})
}

func TestConcurrencyLimits(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := steadyConfig(worker.QueueConfig{Name: "reports", Concurrency: 2}, worker.QueueConfig{Name: "payments"})
		cfg.Concurrency = 5
		m := newManager(t, b, cfg)
		var mu sync.Mutex
		running := map[string]int{}
		peak := map[string]int{}
		total, peakTotal := 0, 0
		// Jobs hold their slots until three have run at once (then 20 ms
		// each, so that runs overlap), so a slow machine starting them
		// late cannot pass for a Manager that does not use its
		// concurrency; if three never run together, the gate opens 5 s
		// after the first job started and the test fails below.
		overlapped := make(chan struct{})
		var openGate, startTimer sync.Once
		open := func() { openGate.Do(func() { close(overlapped) }) }
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
			startTimer.Do(func() {
				gate := time.AfterFunc(5*time.Second, open)
				t.Cleanup(func() { gate.Stop() })
			})
			mu.Lock()
			running[j.Queue]++
			total++
			peak[j.Queue] = max(peak[j.Queue], running[j.Queue])
			peakTotal = max(peakTotal, total)
			if peakTotal >= 3 {
				open()
			}
			mu.Unlock()
			<-overlapped
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			running[j.Queue]--
			total--
			mu.Unlock()
			return nil
		})
		for _, q := range []string{"reports", "payments"} {
			specs := make([]worker.JobSpec, 30)
			for i := range specs {
				specs[i] = worker.JobSpec{Type: "work"}
			}
			if _, err := c.AddMany(context.Background(), q, specs); err != nil {
				t.Fatal(err)
			}
		}
		startManager(t, m)
		waitCompleted(t, c, "reports", 30)
		waitCompleted(t, c, "payments", 30)
		mu.Lock()
		defer mu.Unlock()
		if peak["reports"] > 2 {
			t.Errorf("reports ran %d at once, its concurrency is 2", peak["reports"])
		}
		if peakTotal > 5 {
			t.Errorf("%d jobs ran at once, global concurrency is 5", peakTotal)
		}
		if peakTotal < 3 {
			t.Errorf("at most %d jobs ran at once: the manager does not use its concurrency", peakTotal)
		}
	})
}

func TestStrictQueuePriority(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := fastConfig(worker.QueueConfig{Name: "reports", Priority: 4}, worker.QueueConfig{Name: "invoices", Priority: 1})
		cfg.Concurrency = 1
		cfg.StrictPriority = true
		m := newManager(t, b, cfg)
		rec := recordWork(m, jobQueue)
		for range 5 {
			add(t, c, "reports", worker.JobSpec{Type: "work"})
			add(t, c, "invoices", worker.JobSpec{Type: "work"})
		}
		startManager(t, m)
		order := rec.first(t, 10, 10*time.Second)
		for i, q := range order {
			if want := map[bool]string{true: "invoices", false: "reports"}[i < 5]; q != want {
				t.Fatalf("strict order broken at %d (priority 1 first): %v", i, order)
			}
		}
	})
}

func TestWeightedQueuePriorityServesAll(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := fastConfig(worker.QueueConfig{Name: "low", Priority: 9}, worker.QueueConfig{Name: "high", Priority: 1})
		cfg.Concurrency = 1
		cfg.FetchBatch = 1
		m := newManager(t, b, cfg)
		rec := recordWork(m, jobQueue)
		for _, q := range []string{"low", "high"} {
			specs := make([]worker.JobSpec, 100)
			for i := range specs {
				specs[i] = worker.JobSpec{Type: "work"}
			}
			if _, err := c.AddMany(context.Background(), q, specs); err != nil {
				t.Fatal(err)
			}
		}
		startManager(t, m)
		order := rec.first(t, 100, 20*time.Second)
		high := 0
		for _, q := range order[:100] {
			if q == "high" {
				high++
			}
		}
		// Weights 9 (priority 1) and 1 (priority 9): expect ~90 of the first
		// 100 from "high"; a strict scheduler gives 100, a fair one 50.
		if high < 75 || high > 99 {
			t.Errorf("%d of the first 100 jobs came from the priority-1 (weight 9) queue, want about 90", high)
		}
	})
}

func TestGracefulShutdownDrains(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		started := make(chan struct{})
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
			close(started)
			time.Sleep(300 * time.Millisecond) // finishes within the drain timeout
			return nil
		})
		j := add(t, c, "default", worker.JobSpec{Type: "work"})
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-started
		if err := m.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Get(context.Background(), "default", j.ID); got.State != worker.StateCompleted {
			t.Fatalf("after a graceful shutdown the running job is %s, want completed", got.State)
		}
	})
}

func TestShutdownHandsJobsBackAtOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := fastConfig()
		cfg.ShutdownTimeout = 200 * time.Millisecond
		m := newManager(t, b, cfg)
		started := make(chan struct{})
		_ = m.HandleFunc("long", func(ctx context.Context, j *worker.Job) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
		j := add(t, c, "default", worker.JobSpec{Type: "long", MaxAttempts: 3})
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-started
		if err := m.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Handed back at once: pending now, not after the 30 s lease.
		got, err := c.Get(context.Background(), "default", j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != worker.StatePending || got.Attempt != 0 {
			t.Fatalf("after shutdown the job is %s with attempt %d; want pending with the attempt not counted", got.State, got.Attempt)
		}
	})
}

func TestCancelRunningJob(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := fastConfig()
		cfg.LeaseDuration = 600 * time.Millisecond
		cfg.HeartbeatInterval = 50 * time.Millisecond
		m := newManager(t, b, cfg)
		started := make(chan struct{})
		stopped := make(chan error, 1)
		_ = m.HandleFunc("long", func(ctx context.Context, j *worker.Job) error {
			close(started)
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return ctx.Err()
		})
		j := add(t, c, "default", worker.JobSpec{Type: "long"})
		startManager(t, m)
		<-started
		if _, err := c.Cancel(context.Background(), "default", j.ID); err != nil {
			t.Fatal(err)
		}
		select {
		case cause := <-stopped:
			if !errors.Is(cause, worker.ErrLeaseLost) {
				t.Errorf("context cause = %v, want ErrLeaseLost", cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("processor context was not cancelled after the job was cancelled")
		}
		if got, _ := c.Get(context.Background(), "default", j.ID); got.State != worker.StateCancelled {
			t.Fatalf("state = %s, want cancelled", got.State)
		}
	})
}

func TestHeartbeatKeepsLongJobLeased(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		// A job four leases long completes in one attempt when heartbeats
		// extend its lease. A loaded machine may delay a heartbeat past a
		// short lease, which is then rightly lost: the case tries again
		// on a new queue with leases twice as long, and fails when every
		// try lost its lease.
		var lost []string
		for try, lease := 0, 300*time.Millisecond; try < 4; try, lease = try+1, 2*lease {
			q := fmt.Sprintf("heartbeat-%d", try)
			cfg := fastConfig(worker.QueueConfig{Name: q})
			cfg.LeaseDuration = lease
			cfg.HeartbeatInterval = lease / 5
			m := newManager(t, b, cfg)
			var calls atomic.Int32
			_ = m.HandleFunc("long", func(ctx context.Context, j *worker.Job) error {
				calls.Add(1)
				select {
				case <-time.After(4 * lease):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			j := add(t, c, q, worker.JobSpec{Type: "long"})
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got *worker.Job
			waitFor(t, 10*time.Second+8*lease, "job "+j.ID+" to be completed", func() bool {
				var err error
				if got, err = c.Get(context.Background(), q, j.ID); err != nil {
					t.Fatalf("get job: %v", err)
				}
				return got.State == worker.StateCompleted
			})
			if err := m.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got.Attempt == 1 && calls.Load() == 1 {
				return
			}
			lost = append(lost, fmt.Sprintf("lease %v: attempt %d, calls %d", lease, got.Attempt, calls.Load()))
		}
		t.Fatalf("the lease was lost despite heartbeats, at every lease tried: %v", lost)
	})
}

func TestProgressVisibleWhileRunning(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		reported := make(chan struct{})
		release := make(chan struct{})
		_ = m.HandleFunc("report", func(ctx context.Context, j *worker.Job) error {
			if err := worker.SetProgress(ctx, map[string]int{"percent": 40}); err != nil {
				return err
			}
			close(reported)
			<-release
			return nil
		})
		j := add(t, c, "default", worker.JobSpec{Type: "report"})
		startManager(t, m)
		<-reported
		got, err := c.Get(context.Background(), "default", j.ID)
		close(release)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Progress) != `{"percent":40}` {
			t.Fatalf("progress = %s", got.Progress)
		}
		if err := worker.SetProgress(context.Background(), 1); err == nil {
			t.Error("SetProgress outside a job returned no error")
		}
	})
}

func TestUnknownTypeIsRetriedNotLost(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		j := add(t, c, "default", worker.JobSpec{Type: "nobody.handles.this", MaxAttempts: 2})
		startManager(t, m)
		got := waitState(t, c, "default", j.ID, worker.StateDead)
		if !strings.Contains(got.LastError, `no processor registered for job type "nobody.handles.this"`) {
			t.Errorf("last error = %q", got.LastError)
		}
	})
}

func TestManagerConfigErrors(t *testing.T) {
	b := testbroker.SQLite(t)
	bad := []worker.ManagerConfig{
		{Concurrency: -1},
		{Queues: []worker.QueueConfig{{Name: ""}}},
		{Queues: []worker.QueueConfig{{Name: "a"}, {Name: "a"}}},
		{Queues: []worker.QueueConfig{{Name: "a{b}"}}},
		{LeaseDuration: time.Second, HeartbeatInterval: 2 * time.Second},
		{Retry: retry.Policy{Multiplier: 0.5}},
	}
	for i, cfg := range bad {
		if _, err := worker.NewManager(b, cfg); err == nil {
			t.Errorf("config %d (%+v) accepted", i, cfg)
		}
	}
	m := newManager(t, b, worker.ManagerConfig{})
	if err := m.Register("", worker.ProcessorFunc(func(context.Context, *worker.Job) error { return nil })); err == nil {
		t.Error("empty type accepted")
	}
	if err := m.Register("x", nil); err == nil {
		t.Error("nil processor accepted")
	}
	_ = m.HandleFunc("x", func(context.Context, *worker.Job) error { return nil })
	var we *worker.WorkerError
	if err := m.HandleFunc("x", func(context.Context, *worker.Job) error { return nil }); !errors.As(err, &we) {
		t.Errorf("second registration of a type: err = %v, want a *WorkerError", err)
	}
}

func TestPrefetchHoldsLeasesButRunsWithinConcurrency(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		cfg := fastConfig()
		cfg.Concurrency = 1
		cfg.Prefetch = 3
		m := newManager(t, b, cfg)
		started := make(chan string, 10)
		release := make(chan struct{})
		_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
			started <- j.ID
			<-release
			return nil
		})
		var ids []string
		for range 6 {
			ids = append(ids, add(t, c, "default", worker.JobSpec{Type: "work"}).ID)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		first := <-started
		if first != ids[0] {
			t.Errorf("first job to start = %s, want the first enqueued %s", first, ids[0])
		}
		waitFor(t, 5*time.Second, "four jobs leased (one running, three prefetched)", func() bool {
			s, _ := c.Stats(context.Background(), "default")
			return s.Active == 4 && s.Pending == 2
		})
		if busy := m.Busy(); busy != 1 {
			t.Errorf("Busy() = %d with concurrency 1", busy)
		}
		select {
		case id := <-started:
			t.Fatalf("job %s started while another held the only slot", id)
		case <-time.After(100 * time.Millisecond):
		}
		done := make(chan error, 1)
		go func() { done <- m.Shutdown(context.Background()) }()
		// Prefetched jobs go back at once, before the running one finishes.
		waitFor(t, 5*time.Second, "prefetched jobs handed back", func() bool {
			s, _ := c.Stats(context.Background(), "default")
			return s.Active == 1 && s.Pending == 5
		})
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s, _ := c.Stats(context.Background(), "default")
		if s.Completed != 1 || s.Pending != 5 {
			t.Fatalf("after shutdown: %+v; want 1 completed, 5 pending", *s)
		}
		for _, id := range ids[1:] {
			if j, _ := c.Get(context.Background(), "default", id); j.Attempt != 0 {
				t.Errorf("handed-back job %s has attempt %d, want 0", id, j.Attempt)
			}
		}
	})
}

func TestGoTasksEndWithTheManager(t *testing.T) {
	b := testbroker.SQLite(t)
	m := newManager(t, b, fastConfig())
	var ran, ended atomic.Int32
	task := func(ctx context.Context) {
		ran.Add(1)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // Shutdown must wait for this
		ended.Add(1)
	}
	m.Go(task) // before Start: starts with the Manager
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Go(task) // after Start: starts at once
	waitFor(t, 5*time.Second, "both tasks to run", func() bool { return ran.Load() == 2 })
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ended.Load() != 2 {
		t.Fatalf("Shutdown returned with %d of 2 tasks still running", 2-ended.Load())
	}
	m.Go(task) // after Shutdown: never runs
	time.Sleep(20 * time.Millisecond)
	if ran.Load() != 2 {
		t.Fatal("a task given after Shutdown ran")
	}
}

// Several Managers in one process share one broker (for SQLite, one store
// file): every job runs exactly once and none is lost.
func TestSeveralManagersShareOneBroker(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		const total = 600
		specs := make([]worker.JobSpec, 200)
		for i := range specs {
			specs[i] = worker.JobSpec{Type: "work"}
		}
		for range total / len(specs) {
			if _, err := c.AddMany(context.Background(), "default", specs); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		runs := map[string]int{}
		byManager := map[int]int{}
		for i := range 3 {
			m := newManager(t, b, steadyConfig())
			_ = m.HandleFunc("work", func(ctx context.Context, j *worker.Job) error {
				mu.Lock()
				runs[j.ID]++
				byManager[i]++
				mu.Unlock()
				return nil
			})
			startManager(t, m)
		}
		waitCompleted(t, c, "default", total)
		mu.Lock()
		defer mu.Unlock()
		if len(runs) != total {
			t.Fatalf("%d distinct jobs ran, want %d", len(runs), total)
		}
		for id, n := range runs {
			if n != 1 {
				t.Fatalf("job %s ran %d times", id, n)
			}
		}
		if len(byManager) != 3 {
			t.Errorf("only %d of 3 managers got work: %v", len(byManager), byManager)
		}
	})
}
