package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/retry"
	"github.com/aibos/worker/workflow"
)

// The crash test re-executes the test binary as a worker process that kills
// itself with SIGKILL around a step's completion.
const (
	crashChildEnv  = "WORKFLOW_CRASH_CHILD"
	crashURLEnv    = "WORKFLOW_CRASH_REDIS_URL"
	crashPrefixEnv = "WORKFLOW_CRASH_PREFIX"
	// crashModeEnv: "after:N" kills the process right after its N-th step
	// completion commits; "before:N" right before its N-th commit; "" never.
	crashModeEnv = "WORKFLOW_CRASH_MODE"
	crashLease   = 500 * time.Millisecond
	crashSteps   = 4
)

// crashWorkflow is the workflow both processes register: crashSteps steps
// in sequence, each run by the "count" processor.
func crashWorkflow() workflow.Workflow {
	w := workflow.Workflow{Name: "crash"}
	for i := range crashSteps {
		w.Steps = append(w.Steps, workflow.Step{Name: fmt.Sprintf("s%d", i+1), Processor: "count", RetryAttempts: 20})
	}
	return w
}

// Counter keys, under the test's prefix.
func execKey(prefix, run, step string) string { return prefix + ":test:exec:" + run + ":" + step }
func rerunKey(prefix string) string           { return prefix + ":test:ran-after-completed" }

// killingStore kills the process around the n-th completion of a step.
type killingStore struct {
	*redisbroker.Broker
	before bool
	n      int64
	done   atomic.Int64
}

// Commit counts the commits that complete a job: a step's completion.
func (k *killingStore) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if len(p.Complete) == 0 {
		return k.Broker.Commit(ctx, p)
	}
	n := k.done.Add(1)
	if k.before && n == k.n {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way: never commit
	}
	res, err := k.Broker.Commit(ctx, p)
	if !k.before && n == k.n && err == nil {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return res, err
}

func crashChild() {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "crash child: %s: %v\n", what, err)
		os.Exit(2)
	}
	prefix := os.Getenv(crashPrefixEnv)
	b, err := redisbroker.Open(os.Getenv(crashURLEnv), redisbroker.Config{Prefix: prefix})
	if err != nil {
		fail("open broker", err)
	}
	defer b.Close()
	opt, err := redis.ParseURL(os.Getenv(crashURLEnv))
	if err != nil {
		fail("parse url", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()

	store := &killingStore{Broker: b}
	if mode := os.Getenv(crashModeEnv); mode != "" {
		kind, count, _ := strings.Cut(mode, ":")
		n, err := strconv.ParseInt(count, 10, 64)
		if err != nil {
			fail("parse mode "+mode, err)
		}
		store.before, store.n = kind == "before", n
	}
	e, err := workflow.NewEngine(store, workflow.Config{Logger: discardLogger})
	if err != nil {
		fail("new engine", err)
	}
	err = e.RegisterStepProcessor("count", workflow.StepProcessorFunc(func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
		// A step whose completion has committed must never get here again.
		run, err := e.Get(ctx, s.RunID)
		if err != nil {
			return nil, err
		}
		if run.Step(s.Step.Name).State == workflow.StepCompleted {
			rdb.Incr(ctx, rerunKey(prefix))
		}
		time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
		if err := rdb.Incr(ctx, execKey(prefix, s.RunID, s.Step.Name)).Err(); err != nil {
			return nil, err
		}
		d[s.Step.Name] = s.Attempt
		return d, nil
	}))
	if err != nil {
		fail("register processor", err)
	}
	if err := e.Register(crashWorkflow()); err != nil {
		fail("register workflow", err)
	}
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:            []worker.QueueConfig{{Name: e.Queue()}},
		Concurrency:       4,
		LeaseDuration:     crashLease,
		HeartbeatInterval: crashLease / 5,
		MaintainInterval:  50 * time.Millisecond,
		PollInterval:      5 * time.Millisecond,
		Retry:             retry.Policy{BaseDelay: 5 * time.Millisecond, Multiplier: 1, MaxDelay: 5 * time.Millisecond},
		Logger:            discardLogger,
	})
	if err != nil {
		fail("new manager", err)
	}
	if err := e.Attach(m); err != nil {
		fail("attach", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { // the parent closes stdin to stop a worker that was not killed
		_, _ = os.Stdin.Read(make([]byte, 1))
		stop()
	}()
	if err := m.Run(ctx); err != nil {
		fail("run", err)
	}
}

// runChild runs one worker process until it exits, or until every run has
// finished; it reports whether the process died of SIGKILL.
// killed reports whether a worker process's exit was its SIGKILL.
func killed(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws, ok := ee.Sys().(syscall.WaitStatus)
		return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	}
	return false
}

func runChild(t *testing.T, url, prefix, mode string, done func() bool) bool {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashURLEnv+"="+url, crashPrefixEnv+"="+prefix, crashModeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker process: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-exited:
			if killed(err) {
				return true
			}
			t.Fatalf("worker process exited without being killed: %v", err)
		case <-tick.C:
			if done() {
				stdin.Close()
				err := <-exited
				if killed(err) {
					// Its planned kill came with the last completion.
					return true
				}
				if err != nil {
					t.Fatalf("worker process stopping: %v", err)
				}
				return false
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			t.Fatal("worker process made no progress for 60s")
		}
	}
}

// TestCrashSIGKILLAroundStepCompletion kills worker processes with SIGKILL
// right after (and, less often, right before) a step's completion commits,
// again and again over a batch of runs. Every run must complete, and no
// step whose completion committed may run again. A step re-executed because
// its completion had not committed is at-least-once delivery, counted apart.
func TestCrashSIGKILLAroundStepCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	b, err := redisbroker.Open(url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rdb := redistest.Client(t)
	e := newEngine(t, b)
	if err := e.RegisterStepProcessor("count", workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
		return nil, errors.New("the test process runs no step")
	})); err != nil {
		t.Fatal(err)
	}
	if err := e.Register(crashWorkflow()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const runs = 25
	ids := make([]string, runs)
	for i := range ids {
		run, err := e.Execute(ctx, "crash", map[string]any{"i": i}, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = run.ID
	}
	allDone := func() bool {
		l, err := e.List(ctx, workflow.ListParams{Workflow: "crash", State: workflow.StateSucceeded, Limit: 1000})
		return err == nil && len(l.Runs) == runs
	}
	killsAfter, killsBefore := 0, 0
	for i := 0; i < 40 && !allDone(); i++ {
		mode := fmt.Sprintf("after:%d", 1+rand.IntN(4))
		if i%4 == 3 {
			mode = fmt.Sprintf("before:%d", 1+rand.IntN(4))
		}
		if runChild(t, url, prefix, mode, allDone) {
			if mode[0] == 'a' {
				killsAfter++
			} else {
				killsBefore++
			}
		}
	}
	if !allDone() {
		runChild(t, url, prefix, "", allDone)
	}
	if killsAfter < 10 {
		t.Fatalf("only %d kills right after a completion; the test proves little", killsAfter)
	}

	executions, reexecuted := 0, 0
	for _, id := range ids {
		run, err := e.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != workflow.StateSucceeded {
			t.Fatalf("run %s is %s", id, run.State)
		}
		for _, s := range run.Steps {
			n, err := rdb.Get(ctx, execKey(prefix, id, s.Name)).Int()
			if err != nil {
				t.Fatalf("execution count of %s/%s: %v", id, s.Name, err)
			}
			if s.State != workflow.StepCompleted || n < 1 {
				t.Fatalf("run %s step %s: %s after %d executions", id, s.Name, s.State, n)
			}
			executions += n
			reexecuted += n - 1
		}
	}
	ranAgain, err := rdb.Get(ctx, rerunKey(prefix)).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	t.Logf("workflow SIGKILL crash test: %d runs x %d steps = %d step completions; %d worker processes killed right after a completion committed, %d right before; %d step executions: %d re-executions of steps whose completion had not committed (at-least-once), %d executions of a step already completed",
		runs, crashSteps, runs*crashSteps, killsAfter, killsBefore, executions, reexecuted, ranAgain)
	if ranAgain != 0 {
		t.Fatalf("%d times a step ran again after its completion had committed", ranAgain)
	}
}
