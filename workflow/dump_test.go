package workflow_test

import (
	"context"
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/workflow"
)

// dumpState logs how many runs are in each state, the steps of one running
// run and the queue counts: what a timed-out test needs to be understood.
func dumpState(t *testing.T, b broker.Broker, e *workflow.Engine, wf string) {
	ctx := context.Background()
	for _, s := range []workflow.State{workflow.StateRunning, workflow.StateSucceeded, workflow.StateFailed} {
		l, err := e.List(ctx, workflow.ListParams{Workflow: wf, State: s, Limit: 1000})
		if err != nil {
			t.Logf("list %s: %v", s, err)
			continue
		}
		t.Logf("%s: %d", s, len(l.Runs))
		if s == workflow.StateRunning && len(l.Runs) > 0 {
			for _, st := range l.Runs[0].Steps {
				t.Logf("  step %s %s a=%d err=%q", st.Name, st.State, st.Attempts, st.Error)
			}
		}
	}
	st, _ := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: e.Queue()})
	t.Logf("stats %+v", st)
}
