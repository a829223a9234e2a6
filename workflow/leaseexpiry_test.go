package workflow_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/workflow"
)

// An attempt whose worker dies (its lease expires and maintenance recovers
// the job) counts as one of the step's attempts. When it was the last, the
// run fails at that step, as after a step's last error, without running
// the step again; it does not stay running forever with its step's job
// dead. When attempts are left, the step runs again.
func TestStepWorkerDiesOnAttempt(t *testing.T) {
	for _, c := range []struct {
		name     string
		attempts int
		want     workflow.State
		runs     int64 // runs of the processor after the worker died
	}{
		{"LastAttemptFailsRun", 1, workflow.StateFailed, 0},
		{"AttemptLeftRunsAgain", 2, workflow.StateSucceeded, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, b broker.Broker) {
				ctx := context.Background()
				e := newEngine(t, b)
				var runs atomic.Int64
				mustRegister(t, e, map[string]workflow.StepProcessorFunc{"count": func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
					runs.Add(1)
					return workflow.Data{}, nil
				}}, workflow.Workflow{Name: "w", Steps: []workflow.Step{{Name: "only", Processor: "count", RetryAttempts: c.attempts}}})
				run, err := e.Execute(ctx, "w", nil, workflow.ExecuteOptions{})
				if err != nil {
					t.Fatal(err)
				}
				// A worker leases the step's job and dies: nobody extends
				// or settles its lease.
				jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: e.Queue(), Limit: 1, WorkerID: "dies", LeaseDuration: 50 * time.Millisecond})
				if err != nil || len(jobs) != 1 {
					t.Fatalf("fetch the step's job: %v, %d jobs", err, len(jobs))
				}
				waitFor(t, 10*time.Second, "maintenance to find the lease expired", func() bool {
					res, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: e.Queue()})
					if err != nil {
						t.Fatal(err)
					}
					return res.Recovered+res.Dead > 0
				})
				start(t, b, e, 1)
				got := waitRun(t, e, run.ID, c.want)
				if n := runs.Load(); n != c.runs {
					t.Errorf("the step ran %d times after its worker died, want %d", n, c.runs)
				}
				if c.want != workflow.StateFailed {
					return
				}
				waitJob(t, b, e.Queue(), jobs[0].ID, broker.StateDead)
				if st := got.Step("only"); got.FailedStep != "only" || st.State != workflow.StepFailed || !strings.Contains(st.Error, "lease expired") {
					t.Errorf("run failed at step %q; step only is %s with error %q; want it failed, its lease expired", got.FailedStep, st.State, st.Error)
				}
			})
		})
	}
}
