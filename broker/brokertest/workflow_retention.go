package brokertest

import (
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

func init() {
	cases = append(cases,
		testCase{"WorkflowRetentionByCount", testWorkflowRetentionByCount},
		testCase{"WorkflowRetentionByAge", testWorkflowRetentionByAge},
	)
}

// single returns a one-step run of workflow "single" with a failure hook.
func single(queue, id, idem string) *broker.WorkflowRunCreateParams {
	j := wfJob(id + "-S")
	return &broker.WorkflowRunCreateParams{ID: id, Queue: queue, Workflow: "single", IdempotencyKey: idem,
		Steps:     []broker.WorkflowStepDef{{Name: "S", Job: j}},
		OnFailure: wfJobPtr(id + "-on-fail"),
	}
}

// finishRun creates a one-step run and drives it to state want (succeeded,
// failed or cancelled), then waits until the broker clock is past its
// finish time so finish times are distinct. A failed run's failure hook is
// leased and returned, so the run has an unfinished job.
func (s *bundle) finishRun(queue, id, idem string, want broker.WorkflowState) (*broker.WorkflowRun, *broker.Job) {
	s.t.Helper()
	s.create(single(queue, id, idem))
	switch want {
	case broker.WorkflowCancelled:
		if _, err := s.wfStore().WorkflowRunCancel(s.ctx, queue, id); err != nil {
			s.t.Fatalf("cancel %s: %v", id, err)
		}
	case broker.WorkflowSucceeded:
		if err := s.wfComplete(id, s.fetchOne(queue, longLease), `{}`); err != nil {
			s.t.Fatalf("complete the step of %s: %v", id, err)
		}
	case broker.WorkflowFailed:
		j := s.fetchOne(queue, longLease)
		_, err := s.wfStore().WorkflowJobFail(s.ctx, &broker.WorkflowJobFailParams{Run: id,
			JobFailParams: broker.JobFailParams{JobLeaseParams: lease(j), Error: "boom"}})
		if err != nil {
			s.t.Fatalf("fail the step of %s: %v", id, err)
		}
	}
	run := s.runGet(queue, id)
	if run.State != want || run.FinishedAt.IsZero() {
		s.t.Fatalf("run %s is %s (finished %v), want %s", id, run.State, run.FinishedAt, want)
	}
	var hook *broker.Job
	if want == broker.WorkflowFailed {
		if hook = s.fetchOne(queue, longLease); hook.ID != run.OnFailure.ID {
			s.t.Fatalf("fetched %s after %s failed, want its failure hook", hook.ID, id)
		}
	}
	s.waitPast(run.FinishedAt)
	return run, hook
}

// runMaintain calls WorkflowRunMaintain and fails the case on error.
func (s *bundle) runMaintain(p *broker.WorkflowRunMaintainParams) int {
	s.t.Helper()
	n, err := s.wfStore().WorkflowRunMaintain(s.ctx, p)
	if err != nil {
		s.t.Fatalf("WorkflowRunMaintain(%+v): %v", *p, err)
	}
	return n
}

// wantRunGone checks a run was removed whole: the run, its jobs (whose ids
// are free again) and its entries in the listings.
func (s *bundle) wantRunGone(queue string, run *broker.WorkflowRun) {
	s.t.Helper()
	if _, err := s.wfStore().WorkflowRunGet(s.ctx, queue, run.ID); !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("WorkflowRunGet(%s) after its removal: %v, want ErrNotFound", run.ID, err)
	}
	ids := []string{run.OnFailure.ID}
	for _, st := range run.Steps {
		ids = append(ids, st.Job.ID)
	}
	for _, id := range ids {
		s.wantNotFound(queue, id)
	}
	for _, state := range []broker.WorkflowState{"", run.State} {
		res, err := s.wfStore().WorkflowRunList(s.ctx, &broker.WorkflowRunListParams{Queue: queue, Workflow: run.Workflow, State: state})
		if err != nil {
			s.t.Fatalf("WorkflowRunList: %v", err)
		}
		for _, r := range res.Runs {
			if r.ID == run.ID {
				s.t.Fatalf("WorkflowRunList(state %q) lists the removed run %s", state, run.ID)
			}
		}
	}
}

// wantRunKept checks a run is still stored, in state want.
func (s *bundle) wantRunKept(queue, id string, want broker.WorkflowState) {
	s.t.Helper()
	if r := s.runGet(queue, id); r.State != want {
		s.t.Fatalf("kept run %s is %s, want %s", id, r.State, want)
	}
}

// testWorkflowRetentionByCount: FinishedMaxCount removes the oldest finished
// runs beyond the newest n, whole, at most Limit per call; a running run and
// a failed run whose failure hook has not finished are kept; the
// idempotency key of a removed run starts a new run.
func testWorkflowRetentionByCount(s *bundle) {
	q := "wf-retain-count"
	ws := s.wfStore()
	for _, bad := range []*broker.WorkflowRunMaintainParams{
		{Queue: q, FinishedMaxCount: -1}, {Queue: q, FinishedMaxAge: -time.Second}, {Queue: q, Limit: -1}, {Queue: ""},
	} {
		if _, err := ws.WorkflowRunMaintain(s.ctx, bad); !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Fatalf("WorkflowRunMaintain(%+v): %v, want ErrInvalidJob", *bad, err)
		}
	}
	s.create(single(q, "r0", "k0"))
	active := s.fetchOne(q, longLease) // r0 stays running, its step active
	r1, _ := s.finishRun(q, "r1", "k1", broker.WorkflowSucceeded)
	r2, _ := s.finishRun(q, "r2", "k2", broker.WorkflowCancelled)
	r3, hook := s.finishRun(q, "r3", "", broker.WorkflowFailed) // its failure hook is running
	s.finishRun(q, "r4", "", broker.WorkflowSucceeded)
	if n := s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q}); n != 0 {
		s.t.Fatalf("WorkflowRunMaintain without rules removed %d runs", n)
	}
	if n := s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxCount: 1, Limit: 1}); n != 1 {
		s.t.Fatalf("WorkflowRunMaintain with Limit 1 removed %d runs, want 1 (the oldest finished)", n)
	}
	s.wantRunGone(q, r1)
	s.wantRunKept(q, "r2", broker.WorkflowCancelled)
	// r2 goes; r3 is past the count too but its hook has not run; r4 is the
	// newest finished run.
	if n := s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxCount: 1}); n != 1 {
		s.t.Fatalf("WorkflowRunMaintain keeping 1 finished run removed %d, want 1", n)
	}
	s.wantRunGone(q, r2)
	s.wantRunKept(q, "r3", broker.WorkflowFailed)
	s.wantRunKept(q, "r4", broker.WorkflowSucceeded)
	s.wantRunKept(q, "r0", broker.WorkflowRunning)
	if err := s.wfComplete("r3", hook, ``); err != nil {
		s.t.Fatalf("complete the failure hook of r3: %v", err)
	}
	if n := s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxCount: 1}); n != 1 {
		s.t.Fatalf("WorkflowRunMaintain after r3's hook finished removed %d runs, want 1", n)
	}
	s.wantRunGone(q, r3)
	s.wantRunKept(q, "r4", broker.WorkflowSucceeded)
	s.wantRunKept(q, "r0", broker.WorkflowRunning)
	s.wantState(q, active.ID, broker.StateActive)

	again, created := s.create(single(q, "r5", "k1"))
	if !created || again.ID != "r5" {
		s.t.Fatalf("create with the idempotency key of removed run r1: run %s created %v, want r5 created", again.ID, created)
	}
	if same, created := s.create(single(q, "r6", "k0")); created || same.ID != "r0" {
		s.t.Fatalf("create with the key of running run r0: run %s created %v, want r0 not created", same.ID, created)
	}
	s.delete(q, s.insert(q, withID(r1.Steps[0].Job.ID)).ID) // removed whole: the job id is free

	// A run whose only hook would reuse a stored job's id is refused, so
	// retention never removes a job that is not the run's.
	taken := single(q, "r7", "")
	taken.OnFailure.ID = active.ID
	if _, _, err := ws.WorkflowRunCreate(s.ctx, taken); !errors.Is(err, broker.ErrDuplicate) {
		s.t.Fatalf("create a run whose failure hook id is a stored job's: %v, want ErrDuplicate", err)
	}
}

// testWorkflowRetentionByAge: FinishedMaxAge removes runs finished longer
// ago, whole, and nothing else; a run still running is never removed,
// however old.
func testWorkflowRetentionByAge(s *bundle) {
	const maxAge = 500 * time.Millisecond
	q := "wf-retain-age"
	s.create(single(q, "r0", "")) // running, and older than every other run
	s.fetchOne(q, longLease)      // its step stays active
	old, _ := s.finishRun(q, "r1", "k1", broker.WorkflowSucceeded)
	s.waitPast(old.FinishedAt.Add(maxAge))
	young, _ := s.finishRun(q, "r2", "k2", broker.WorkflowCancelled)

	n := s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxAge: maxAge})
	s.wantRunGone(q, old)
	s.wantRunKept(q, "r0", broker.WorkflowRunning)
	if s.now().Before(young.FinishedAt.Add(maxAge)) {
		if n != 1 {
			s.t.Fatalf("WorkflowRunMaintain with FinishedMaxAge removed %d runs, want 1", n)
		}
		s.wantRunKept(q, "r2", broker.WorkflowCancelled)
	}
	if again, created := s.create(single(q, "r3", "k1")); !created || again.ID != "r3" {
		s.t.Fatalf("create with the idempotency key of removed run r1: run %s created %v, want r3 created", again.ID, created)
	}

	s.waitPast(young.FinishedAt.Add(maxAge))
	s.runMaintain(&broker.WorkflowRunMaintainParams{Queue: q, FinishedMaxAge: maxAge})
	s.wantRunGone(q, young)
	s.wantRunKept(q, "r0", broker.WorkflowRunning)
	s.wantRunKept(q, "r3", broker.WorkflowRunning)
}
