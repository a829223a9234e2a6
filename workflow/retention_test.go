package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/workflow"
)

// retainedEngine returns an engine on b with the given retention, applied
// every 20ms once attached, and a one-step workflow "tiny" registered.
func retainedEngine(t *testing.T, b broker.Broker, maxAge time.Duration, maxCount int, step workflow.StepProcessorFunc) *workflow.Engine {
	t.Helper()
	e, err := workflow.NewEngine(b, workflow.Config{Logger: discardLogger, FinishedMaxAge: maxAge, FinishedMaxCount: maxCount,
		RetentionInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, e, map[string]workflow.StepProcessorFunc{"step": step},
		workflow.Workflow{Name: "tiny", Steps: []workflow.Step{{Name: "only", Processor: "step"}}})
	return e
}

// getRun returns the run, or nil once it has been removed.
func getRun(t *testing.T, e *workflow.Engine, id string) *workflow.Run {
	t.Helper()
	run, err := e.Get(context.Background(), id)
	if errors.Is(err, worker.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("get run %s: %v", id, err)
	}
	return run
}

// TestRetentionKeepsNewestFinishedRuns: an attached engine removes the
// finished runs beyond FinishedMaxCount in the background, whole (the run
// and its step's job), and the idempotency key of a removed run starts a
// new run.
func TestRetentionKeepsNewestFinishedRuns(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := retainedEngine(t, b, -1, 2, add("done", true))
		start(t, b, e, 2)
		ctx := context.Background()
		ids := map[string]string{} // idempotency key → run id
		for i := range 5 {
			key := fmt.Sprintf("k%d", i)
			run, err := e.Execute(ctx, "tiny", nil, workflow.ExecuteOptions{IdempotencyKey: key})
			if err != nil {
				t.Fatal(err)
			}
			ids[key] = run.ID
		}
		var removedKey string
		waitFor(t, 20*time.Second, "3 of 5 finished runs to be removed and 2 kept", func() bool {
			kept, removed := 0, 0
			for key, id := range ids {
				switch run := getRun(t, e, id); {
				case run == nil:
					removed, removedKey = removed+1, key
				case run.State == workflow.StateSucceeded:
					kept++
				}
			}
			return kept == 2 && removed == 3
		})
		// Nothing further is removed: the count is kept, not undershot.
		list, err := e.List(ctx, workflow.ListParams{Workflow: "tiny"})
		if err != nil || len(list.Runs) != 2 {
			t.Fatalf("listed %d runs (%v) after retention, want the 2 kept", len(list.Runs), err)
		}
		removed := ids[removedKey]
		if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: e.Queue(), ID: removed + ":step:only"}); !errors.Is(err, broker.ErrNotFound) {
			t.Fatalf("the step job of removed run %s: %v, want ErrNotFound", removed, err)
		}
		again, err := e.Execute(ctx, "tiny", nil, workflow.ExecuteOptions{IdempotencyKey: removedKey})
		if err != nil {
			t.Fatal(err)
		}
		if again.ID == removed {
			t.Fatalf("Execute with the key of removed run %s returned that run", removed)
		}
		waitRun(t, e, again.ID, workflow.StateSucceeded)
	})
}

// TestRetentionByAgeSparesRunningRuns: a run finished longer ago than
// FinishedMaxAge is removed in the background; a running run is not,
// however old.
func TestRetentionByAgeSparesRunningRuns(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		release := make(chan struct{})
		e := retainedEngine(t, b, 100*time.Millisecond, -1,
			func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				if d["block"] == true {
					select {
					case <-release:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return d, nil
			})
		start(t, b, e, 2)
		ctx := context.Background()
		blocked, err := e.Execute(ctx, "tiny", map[string]any{"block": true}, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		quick, err := e.Execute(ctx, "tiny", nil, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the finished run to be removed", func() bool { return getRun(t, e, quick.ID) == nil })
		if run := getRun(t, e, blocked.ID); run == nil || run.State != workflow.StateRunning {
			t.Fatalf("the running run after retention: %+v, want it kept, running", run)
		}
		close(release)
		waitFor(t, 20*time.Second, "the blocked run, once finished, to be removed", func() bool { return getRun(t, e, blocked.ID) == nil })
	})
}

func TestConfigDefaults(t *testing.T) {
	e, err := workflow.NewEngine(testbroker.SQLite(t), workflow.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.FinishedMaxAge != 7*24*time.Hour || c.FinishedMaxCount != 10000 || c.RetentionInterval != time.Minute || c.Queue != workflow.DefaultQueue {
		t.Fatalf("defaults: max age %v, max count %d, interval %v, queue %q", c.FinishedMaxAge, c.FinishedMaxCount, c.RetentionInterval, c.Queue)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestRetentionStopsWithItsManager: without Close, the retention loop ends
// once the only attached Manager has shut down. Not parallel: it checks
// for goroutines left behind.
func TestRetentionStopsWithItsManager(t *testing.T) {
	b := testbroker.SQLite(t)
	before := goleak.IgnoreCurrent()
	e := retainedEngine(t, b, time.Hour, 10, add("done", true))
	m, err := worker.NewManager(b, managerConfig(e.Queue(), 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Attach(m); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Execute(context.Background(), "tiny", nil, workflow.ExecuteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}
