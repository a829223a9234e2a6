package runstore_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/testbroker"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// TestRewritePageNeverClobbers: a run that changes between RewritePage's
// read and its write (here: cancelled) is read again and rewritten from
// its new state, so the change is kept.
func TestRewritePageNeverClobbers(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		s, err := runstore.New(b)
		if err != nil {
			t.Fatal(err)
		}
		const q = "workflows"
		p := &broker.WorkflowRunCreateParams{ID: "r1", Queue: q, Workflow: "w", Input: json.RawMessage(`{"a":1}`),
			Steps: []broker.WorkflowStepDef{{Name: "s", Job: broker.WorkflowJob{ID: "r1:step:s", Type: "workflow.step", MaxAttempts: 1}}}}
		if _, _, err := s.WorkflowRunCreate(ctx, p); err != nil {
			t.Fatal(err)
		}
		calls := 0
		read, next, wrote, err := s.RewritePage(ctx, q, runstore.RewriteIndexes[0], 0, 10, func(run *broker.WorkflowRun) (bool, error) {
			calls++
			if calls == 1 {
				if _, err := s.WorkflowRunCancel(ctx, q, run.ID); err != nil {
					t.Fatal(err)
				}
			}
			run.Input = json.RawMessage(`{"a":2}`)
			return true, nil
		})
		if err != nil || read != 1 || next != -1 || wrote != 1 || calls != 2 {
			t.Fatalf("RewritePage: read %d, next %d, wrote %d, err %v, f called %d times; want 1, -1, 1, nil, twice", read, next, wrote, err, calls)
		}
		run, err := s.WorkflowRunGet(ctx, q, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if run.State != broker.WorkflowCancelled || string(run.Input) != `{"a":2}` {
			t.Fatalf("run is %s with input %s; want the cancel kept and the input rewritten", run.State, run.Input)
		}
	})
}
