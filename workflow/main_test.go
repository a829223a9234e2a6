package workflow_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/retry"
	"github.com/aibos/worker/workflow"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(redistest.Main(m))
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// eachEngine runs f against every broker, in parallel.
func eachEngine(t *testing.T, f func(t *testing.T, b broker.Broker)) { testbroker.Each(t, f) }

// newEngine returns an engine on b.
func newEngine(t *testing.T, b broker.Broker) *workflow.Engine {
	t.Helper()
	e, err := workflow.NewEngine(b, workflow.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// managerConfig is a Manager config with short intervals for tests.
func managerConfig(queue string, concurrency int) worker.ManagerConfig {
	return worker.ManagerConfig{
		Queues:            []worker.QueueConfig{{Name: queue}},
		Concurrency:       concurrency,
		PollInterval:      5 * time.Millisecond,
		MaintainInterval:  200 * time.Millisecond,
		LeaseDuration:     2 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
		Retry:             retry.Policy{BaseDelay: 5 * time.Millisecond, Multiplier: 1, MaxDelay: 5 * time.Millisecond},
		Logger:            discardLogger,
	}
}

// start attaches e to a new Manager on b and starts it; the Manager is shut
// down, then the engine closed, when the test ends.
func start(t *testing.T, b broker.Broker, e *workflow.Engine, concurrency int) *worker.Manager {
	t.Helper()
	return startWith(t, b, e, managerConfig(e.Queue(), concurrency))
}

// startWith is start with the Manager's config.
func startWith(t *testing.T, b broker.Broker, e *workflow.Engine, cfg worker.ManagerConfig) *worker.Manager {
	t.Helper()
	m, err := worker.NewManager(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.Attach(m); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return m
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRun waits until the run is in state want and returns it.
func waitRun(t *testing.T, e *workflow.Engine, id string, want workflow.State) *workflow.Run {
	t.Helper()
	var run *workflow.Run
	waitFor(t, 20*time.Second, "run "+id+" to be "+string(want), func() bool {
		var err error
		run, err = e.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("get run: %v", err)
		}
		return run.State == want
	})
	return run
}

// waitJob waits until a job of the engine's queue is in state want.
func waitJob(t *testing.T, b broker.Broker, queue, id string, want broker.State) {
	t.Helper()
	waitFor(t, 20*time.Second, "job "+id+" to be "+string(want), func() bool {
		j, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: queue, ID: id})
		return err == nil && j.State == want
	})
}

func mustRegister(t *testing.T, e *workflow.Engine, procs map[string]workflow.StepProcessorFunc, w workflow.Workflow) {
	t.Helper()
	for name, p := range procs {
		if err := e.RegisterStepProcessor(name, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Register(w); err != nil {
		t.Fatal(err)
	}
}
