package brokertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
)

// The workflow cases run package workflow's rules (internal/runstore) on
// the broker's broker.Committer; they skip brokers without it.
func init() {
	cases = append(cases,
		testCase{"WorkflowFanIn", testWorkflowFanIn},
		testCase{"WorkflowStaleTokenRejected", testWorkflowStaleToken},
		testCase{"WorkflowFailureCompensates", testWorkflowFailure},
		testCase{"WorkflowIdempotencyAndCancel", testWorkflowIdempotencyCancel},
		testCase{"WorkflowWaitsForEveryBranch", testWorkflowWaitsForEveryBranch},
	)
}

// wfStore returns the run store on the case's broker or skips the case.
func (s *bundle) wfStore() *runstore.Store {
	ws, err := runstore.New(s.b)
	if err != nil {
		s.t.Skip(err)
	}
	return ws
}

func wfJob(id string) broker.WorkflowJob {
	return broker.WorkflowJob{ID: id, Type: "brokertest.step", Data: json.RawMessage(`{"step":"` + id + `"}`), MaxAttempts: 1}
}

func wfJobPtr(id string) *broker.WorkflowJob { j := wfJob(id); return &j }

// diamond returns a run A → B, C → D with a success hook.
func (s *bundle) diamond(queue, id string) *broker.WorkflowRunCreateParams {
	return &broker.WorkflowRunCreateParams{
		ID: id, Queue: queue, Workflow: "diamond", TenantID: "t1", Input: json.RawMessage(`{"n":1}`),
		Steps: []broker.WorkflowStepDef{
			{Name: "A", Job: wfJob(id + "-A")},
			{Name: "B", DependsOn: []string{"A"}, Job: wfJob(id + "-B")},
			{Name: "C", DependsOn: []string{"A"}, Job: wfJob(id + "-C")},
			{Name: "D", DependsOn: []string{"B", "C"}, Job: wfJob(id + "-D")},
		},
		OnSuccess: wfJobPtr(id + "-ok"),
	}
}

func (s *bundle) create(p *broker.WorkflowRunCreateParams) (*broker.WorkflowRun, bool) {
	s.t.Helper()
	run, created, err := s.wfStore().WorkflowRunCreate(s.ctx, p)
	if err != nil {
		s.t.Fatalf("WorkflowRunCreate(%s): %v", p.ID, err)
	}
	return run, created
}

func (s *bundle) wfComplete(run string, j *broker.Job, out string) error {
	return s.wfStore().WorkflowJobComplete(s.ctx, &broker.WorkflowJobCompleteParams{
		JobCompleteParams: broker.JobCompleteParams{JobLeaseParams: lease(j), Result: json.RawMessage(out)}, Run: run})
}

func (s *bundle) runGet(queue, id string) *broker.WorkflowRun {
	s.t.Helper()
	run, err := s.wfStore().WorkflowRunGet(s.ctx, queue, id)
	if err != nil {
		s.t.Fatalf("WorkflowRunGet(%s): %v", id, err)
	}
	return run
}

// testWorkflowFanIn: creating a run enqueues its roots; completing a step
// records its output and enqueues what it unblocks in the same call; a
// fan-in step waits for all its dependencies; the last step succeeds the
// run and enqueues the success hook.
func testWorkflowFanIn(s *bundle) {
	q := "wf-fanin"
	s.wfStore()
	run, created := s.create(s.diamond(q, "r1"))
	if !created || run.State != broker.WorkflowRunning || run.TenantID != "t1" || len(run.Steps) != 4 {
		s.t.Fatalf("new run: created %v, %+v", created, run)
	}
	a := s.fetchOne(q, longLease)
	if a.ID != "r1-A" || a.TenantID != "t1" {
		s.t.Fatalf("first fetch: job %s tenant %q, want r1-A of t1", a.ID, a.TenantID)
	}
	s.fetchNone(q, "only the root step is enqueued")
	if err := s.wfComplete("r1", a, `{"a":1}`); err != nil {
		s.t.Fatalf("complete A: %v", err)
	}
	s.wantState(q, a.ID, broker.StateCompleted)
	bc := s.fetch(q, 10, longLease)
	got := ids(bc)
	slices.Sort(got)
	wantIDs(s.t, "jobs after A completed", got, []string{"r1-B", "r1-C"})
	if err := s.wfComplete("r1", bc[0], `{"x":1}`); err != nil {
		s.t.Fatalf("complete %s: %v", bc[0].ID, err)
	}
	s.fetchNone(q, "D depends on both B and C")
	if st := s.runGet(q, "r1").Step("D").State; st != broker.StepWaiting {
		s.t.Fatalf("D is %s with one dependency left, want waiting", st)
	}
	if err := s.wfComplete("r1", bc[1], `{"x":2}`); err != nil {
		s.t.Fatalf("complete %s: %v", bc[1].ID, err)
	}
	d := s.fetchOne(q, longLease)
	if d.ID != "r1-D" {
		s.t.Fatalf("after B and C: fetched %s, want r1-D", d.ID)
	}
	if err := s.wfComplete("r1", d, `{"d":1}`); err != nil {
		s.t.Fatalf("complete D: %v", err)
	}
	run = s.runGet(q, "r1")
	if run.State != broker.WorkflowSucceeded || run.FinishedAt.IsZero() {
		s.t.Fatalf("run after its last step: %s finished %v, want succeeded", run.State, run.FinishedAt)
	}
	for i, st := range run.Steps {
		if st.State != broker.StepCompleted || st.Attempts != 1 || st.CompletedSeq == 0 {
			s.t.Fatalf("step %d %s: %s attempts %d seq %d", i, st.Name, st.State, st.Attempts, st.CompletedSeq)
		}
	}
	if string(run.Step("A").Output) != `{"a":1}` || run.Step("D").CompletedSeq != 4 {
		s.t.Fatalf("A output %s, D seq %d; want {\"a\":1} and 4", run.Step("A").Output, run.Step("D").CompletedSeq)
	}
	if ok := s.fetchOne(q, longLease); ok.ID != "r1-ok" {
		s.t.Fatalf("after success fetched %s, want the success hook", ok.ID)
	}
	res, err := s.wfStore().WorkflowRunList(s.ctx, &broker.WorkflowRunListParams{Queue: q, Workflow: "diamond", State: broker.WorkflowSucceeded})
	if err != nil || len(res.Runs) != 1 || res.Runs[0].ID != "r1" {
		s.t.Fatalf("WorkflowRunList(succeeded) = %+v, %v", res, err)
	}
}

// testWorkflowStaleToken: a completion under a stale token changes nothing.
func testWorkflowStaleToken(s *bundle) {
	q := "wf-stale"
	s.wfStore()
	s.create(s.diamond(q, "r1"))
	a := s.fetchOne(q, longLease)
	stale := *a
	stale.LeaseToken--
	if err := s.wfComplete("r1", &stale, `{}`); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("complete under a stale token: %v, want ErrLeaseLost", err)
	}
	if err := s.wfComplete("other-run", a, `{}`); !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("complete naming another run: %v, want ErrNotFound", err)
	}
	if st := s.runGet(q, "r1").Step("A").State; st != broker.StepRunning {
		s.t.Fatalf("A is %s after rejected completions, want running", st)
	}
	s.fetchNone(q, "nothing was unblocked")
}

// testWorkflowFailure: a step retries within its attempts; when its job
// dies the run fails, open steps are cancelled, and compensations run one
// at a time in reverse completion order, then the failure hook.
func testWorkflowFailure(s *bundle) {
	q := "wf-fail"
	ws := s.wfStore()
	p := &broker.WorkflowRunCreateParams{ID: "r1", Queue: q, Workflow: "fail",
		Steps: []broker.WorkflowStepDef{
			{Name: "A", Job: wfJob("A"), Compensation: wfJobPtr("undo-A")},
			{Name: "B", Job: wfJob("B"), Compensation: wfJobPtr("undo-B")},
			{Name: "X", DependsOn: []string{"A", "B"}, Job: broker.WorkflowJob{ID: "X", Type: "t", MaxAttempts: 2}},
			{Name: "Y", Job: wfJob("Y")},
			{Name: "Z", DependsOn: []string{"X"}, Job: wfJob("Z")},
		},
		OnFailure: wfJobPtr("on-fail"),
	}
	p.Steps[3].DependsOn = nil
	s.create(p)
	jobs := s.fetch(q, 10, longLease)
	byID := map[string]*broker.Job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	for _, id := range []string{"B", "A"} { // B completes first
		if err := s.wfComplete("r1", byID[id], `{}`); err != nil {
			s.t.Fatalf("complete %s: %v", id, err)
		}
	}
	fail := func(j *broker.Job) broker.State {
		st, err := ws.WorkflowJobFail(s.ctx, &broker.WorkflowJobFailParams{Run: "r1",
			JobFailParams: broker.JobFailParams{JobLeaseParams: lease(j), Error: "boom"}})
		if err != nil {
			s.t.Fatalf("fail %s: %v", j.ID, err)
		}
		return st
	}
	x := s.fetchOne(q, longLease)
	if x.ID != "X" || fail(x) != broker.StateScheduled {
		s.t.Fatalf("first failure of X (%s) must schedule a retry", x.ID)
	}
	if r := s.runGet(q, "r1"); r.State != broker.WorkflowRunning || r.Step("X").Attempts != 1 || r.Step("X").Error != "boom" {
		s.t.Fatalf("after a retryable failure: run %s, X attempts %d error %q", r.State, r.Step("X").Attempts, r.Step("X").Error)
	}
	x = s.fetchWait(q, longLease)
	if fail(x) != broker.StateDead {
		s.t.Fatal("X's last attempt failed but its job is not dead")
	}
	r := s.runGet(q, "r1")
	if r.State != broker.WorkflowFailed || r.FailedStep != "X" || r.Error != "boom" || r.Step("X").State != broker.StepFailed ||
		r.Step("Y").State != broker.StepCancelled || r.Step("Z").State != broker.StepCancelled {
		s.t.Fatalf("failed run: %s at %q (%q); X %s Y %s Z %s", r.State, r.FailedStep, r.Error,
			r.Step("X").State, r.Step("Y").State, r.Step("Z").State)
	}
	s.wantState(q, "Y", broker.StateCancelled)
	for _, want := range []string{"undo-A", "undo-B", "on-fail"} { // A completed last
		j := s.fetchOne(q, longLease)
		if j.ID != want {
			s.t.Fatalf("fetched %s, want %s (compensations in reverse completion order, then the hook)", j.ID, want)
		}
		s.fetchNone(q, "compensations run one at a time")
		if err := s.wfComplete("r1", j, ``); err != nil {
			s.t.Fatalf("complete %s: %v", j.ID, err)
		}
	}
	r = s.runGet(q, "r1")
	if r.Step("A").CompensationState != broker.CompensationCompleted || r.Step("B").CompensationState != broker.CompensationCompleted {
		s.t.Fatalf("compensation states A %q B %q, want completed", r.Step("A").CompensationState, r.Step("B").CompensationState)
	}
}

// testWorkflowIdempotencyCancel: one idempotency key, one run; cancel
// cancels the open steps' jobs (revoking an active lease) and the run.
func testWorkflowIdempotencyCancel(s *bundle) {
	q := "wf-cancel"
	ws := s.wfStore()
	p := s.diamond(q, "r1")
	p.IdempotencyKey = "k"
	first, _ := s.create(p)
	p2 := s.diamond(q, "r2")
	p2.IdempotencyKey = "k"
	again, created := s.create(p2)
	if created || again.ID != first.ID {
		s.t.Fatalf("second create with the same key: run %s created %v, want run %s not created", again.ID, created, first.ID)
	}
	if _, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: q, ID: "r2-A"}); !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("the rejected run's job exists: %v", err)
	}
	if _, _, err := ws.WorkflowRunCreate(s.ctx, s.diamond(q, "r1")); !errors.Is(err, broker.ErrDuplicate) {
		s.t.Fatalf("create with an existing run id: %v, want ErrDuplicate", err)
	}
	a := s.fetchOne(q, longLease)
	run, err := ws.WorkflowRunCancel(s.ctx, q, "r1")
	if err != nil {
		s.t.Fatalf("cancel: %v", err)
	}
	if run.State != broker.WorkflowCancelled || run.Step("A").State != broker.StepCancelled || run.Step("D").State != broker.StepCancelled {
		s.t.Fatalf("cancelled run: %s, A %s, D %s", run.State, run.Step("A").State, run.Step("D").State)
	}
	if err := s.wfComplete("r1", a, `{}`); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("completing the cancelled run's active job: %v, want ErrLeaseLost", err)
	}
	if _, err := ws.WorkflowRunCancel(s.ctx, q, "r1"); !errors.Is(err, broker.ErrWrongState) {
		s.t.Fatalf("second cancel: %v, want ErrWrongState", err)
	}
	if _, err := ws.WorkflowRunGet(s.ctx, q, "nope"); !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("get a missing run: %v, want ErrNotFound", err)
	}
	s.fetchNone(q, "the run is cancelled")
}

// testWorkflowWaitsForEveryBranch: a run of parallel branches never
// succeeds (nor enqueues its success hook) while one branch is pending or
// running, whichever branch that is; it succeeds once the last completes.
func testWorkflowWaitsForEveryBranch(s *bundle) {
	q := "wf-branches"
	s.wfStore()
	for open := range 3 {
		id := fmt.Sprintf("r%d", open)
		p := &broker.WorkflowRunCreateParams{ID: id, Queue: q, Workflow: "branches", OnSuccess: wfJobPtr(id + "-ok")}
		for b := range 3 {
			p.Steps = append(p.Steps, broker.WorkflowStepDef{Name: fmt.Sprintf("P%d", b), Job: wfJob(fmt.Sprintf("%s-P%d", id, b))})
		}
		s.create(p)
		// The open branch of the last run stays pending (not fetched); in
		// the others it is running.
		pending := open == 2
		n := 3
		if pending {
			n = 2
		}
		jobs := s.fetch(q, n, longLease)
		if len(jobs) != n {
			s.t.Fatalf("run %s: fetched %v, want %d of its branches", id, ids(jobs), n)
		}
		var last *broker.Job
		for _, j := range jobs {
			if j.ID == fmt.Sprintf("%s-P%d", id, open) {
				last = j
				continue
			}
			if err := s.wfComplete(id, j, `{}`); err != nil {
				s.t.Fatalf("complete %s: %v", j.ID, err)
			}
			if run := s.runGet(q, id); run.State != broker.WorkflowRunning {
				s.t.Fatalf("run %s is %s after %s completed, with branch P%d still open", id, run.State, j.ID, open)
			}
		}
		want := broker.StepRunning
		if pending {
			want = broker.StepPending
		}
		if st := s.runGet(q, id).Step(fmt.Sprintf("P%d", open)).State; st != want {
			s.t.Fatalf("run %s: open branch P%d is %s, want %s", id, open, st, want)
		}
		if pending {
			last = s.fetchOne(q, longLease)
			if last.ID != fmt.Sprintf("%s-P%d", id, open) {
				s.t.Fatalf("run %s: fetched %s, want the open branch P%d (no success hook yet)", id, last.ID, open)
			}
		} else {
			s.fetchNone(q, "no success hook while a branch runs")
		}
		if err := s.wfComplete(id, last, `{}`); err != nil {
			s.t.Fatalf("complete %s: %v", last.ID, err)
		}
		if run := s.runGet(q, id); run.State != broker.WorkflowSucceeded {
			s.t.Fatalf("run %s is %s after its last branch completed, want succeeded", id, run.State)
		}
		if ok := s.fetchOne(q, longLease); ok.ID != id+"-ok" {
			s.t.Fatalf("run %s: fetched %s after success, want its hook", id, ok.ID)
		}
	}
}
