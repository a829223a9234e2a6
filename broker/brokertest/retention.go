package brokertest

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/aibos/worker/broker"
)

// testRetentionOnlyCompleted: each retention rule removes only the state it
// names. The completed-jobs rules (count and age) never remove cancelled,
// expired or dead jobs, however old, nor unfinished ones; DeadMaxAge removes
// dead jobs only.
func testRetentionOnlyCompleted(s *bundle) {
	const maxAge = 200 * time.Millisecond
	q := "retention-only"
	var completed []string
	for range 2 {
		s.insert(q)
		j := s.fetchOne(q, longLease)
		s.complete(j, nil)
		completed = append(completed, j.ID)
	}
	s.insert(q, withAttempts(1))
	dead := s.fetchOne(q, longLease)
	if st := s.fail(dead, "boom", 0, false); st != broker.StateDead {
		s.t.Fatalf("JobFail of a job with no attempts left: state %q, want dead", st)
	}
	s.insert(q)
	active := s.fetchOne(q, longLease)
	cancelled := s.insert(q)
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: cancelled.ID}); err != nil {
		s.t.Fatalf("JobCancel(%s): %v", cancelled.ID, err)
	}
	expired := s.insert(q, withTTL(maxAge))
	s.waitPast(s.get(q, expired.ID).ExpiresAt)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Expired != 1 || r.Removed != 0 {
		s.t.Fatalf("QueueMaintain without retention rules: %+v, want 1 expired and nothing removed", *r)
	}
	pending := s.insert(q)
	scheduled := s.insert(q, withDelay(time.Hour))
	all := counts{broker.StateCompleted: 2, broker.StateDead: 1, broker.StateActive: 1, broker.StateCancelled: 1,
		broker.StateExpired: 1, broker.StatePending: 1, broker.StateScheduled: 1}
	s.wantCounts(q, all)
	kept := func(why string) {
		s.t.Helper()
		for id, st := range map[string]broker.State{active.ID: broker.StateActive, cancelled.ID: broker.StateCancelled,
			expired.ID: broker.StateExpired, pending.ID: broker.StatePending, scheduled.ID: broker.StateScheduled} {
			if j, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: q, ID: id}); err != nil || j.State != st {
				s.t.Fatalf("%s: job %s (%s) is gone or changed: %v, %v", why, id, st, j, err)
			}
		}
	}

	// The count rule keeps the newest completed job and touches nothing else.
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxCount: 1}); r.Removed != 1 {
		s.t.Fatalf("QueueMaintain keeping 1 completed job of 2 removed %d jobs, want 1", r.Removed)
	}
	s.wantNotFound(q, completed[0])
	all[broker.StateCompleted] = 1
	s.wantCounts(q, all)
	kept("after the completed-jobs count rule")

	// The age rule, with every finished job older than it, removes the
	// completed one only.
	for _, id := range []string{completed[1], dead.ID, cancelled.ID, expired.ID} {
		s.waitPast(s.get(q, id).FinishedAt.Add(maxAge))
	}
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxAge: maxAge, CompletedMaxCount: 1}); r.Removed != 1 {
		s.t.Fatalf("QueueMaintain with CompletedMaxAge past every finished job removed %d jobs, want the 1 completed", r.Removed)
	}
	s.wantNotFound(q, completed[1])
	all[broker.StateCompleted] = 0
	s.wantCounts(q, all)
	kept("after the completed-jobs age rule")

	// DeadMaxAge removes the dead job, not the cancelled or expired ones.
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, DeadMaxAge: maxAge}); r.Removed != 1 {
		s.t.Fatalf("QueueMaintain with DeadMaxAge removed %d jobs, want the 1 dead", r.Removed)
	}
	s.wantNotFound(q, dead.ID)
	all[broker.StateDead] = 0
	s.wantCounts(q, all)
	kept("after the dead-jobs age rule")
}

// testRetentionKeepsPace: a retention rule removes at most Limit jobs per
// call and reports More while it may have left some, so a caller that calls
// again while More holds removes any backlog, however fast jobs complete.
func testRetentionKeepsPace(s *bundle) {
	const n, keep, limit = 25, 2, 10
	q := "retention-pace"
	if _, err := s.b.JobInsertMany(s.ctx, s.batch(q, n)); err != nil {
		s.t.Fatalf("JobInsertMany of %d jobs: %v", n, err)
	}
	jobs := s.fetch(q, n, longLease)
	if len(jobs) != n {
		s.t.Fatalf("JobFetch(limit %d) returned %d jobs", n, len(jobs))
	}
	ps := make([]*broker.JobCompleteParams, n)
	for i, j := range jobs {
		ps[i] = &broker.JobCompleteParams{JobLeaseParams: lease(j)}
	}
	if errs, err := s.b.JobComplete(s.ctx, ps); err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		s.t.Fatalf("JobComplete of %d jobs: %v, %v", n, errs, err)
	}
	var removed []int
	for {
		r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxCount: keep, Limit: limit})
		removed = append(removed, r.Removed)
		if !r.More {
			break
		}
		if len(removed) > n {
			s.t.Fatalf("QueueMaintain keeps reporting More: removed %v", removed)
		}
	}
	if want := []int{limit, limit, n - keep - 2*limit}; !slices.Equal(removed, want) {
		s.t.Fatalf("QueueMaintain(Limit %d, keep %d of %d completed) called while More: removed %v per call, want %v",
			limit, keep, n, removed, want)
	}
	s.wantCounts(q, counts{broker.StateCompleted: keep})
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxCount: keep, Limit: limit}); r.Removed != 0 || r.More {
		s.t.Fatalf("QueueMaintain with nothing to do: %+v, want nothing removed and no More", *r)
	}
}

// testDeleteOnComplete: a job inserted with DeleteOnComplete, or completed
// with Delete, is removed whole as it completes: JobGet and the listings no
// longer find it, no state counts it, a late completion finds nothing, and
// its id and unique key are free again. Other jobs are kept completed.
func testDeleteOnComplete(s *bundle) {
	q := "delete-on-complete"
	tenant := func(p *broker.JobInsertParams) { p.TenantID = "t1" } // with tenant index entries to remove
	byJob := s.insert(q, withKey("k1"), withTTL(time.Hour), tenant, func(p *broker.JobInsertParams) { p.DeleteOnComplete = true })
	if !byJob.DeleteOnComplete || !s.get(q, byJob.ID).DeleteOnComplete {
		s.t.Fatalf("job inserted with DeleteOnComplete does not say so when inserted or read back")
	}
	byCall := s.insert(q, withKey("k2"), tenant)
	kept := s.insert(q, tenant)
	if s.get(q, kept.ID).DeleteOnComplete {
		s.t.Fatalf("job inserted without DeleteOnComplete reads back with it")
	}
	jobs := s.fetch(q, 3, longLease)
	wantIDs(s.t, "fetch order", ids(jobs), []string{byJob.ID, byCall.ID, kept.ID})
	errs, err := s.b.JobComplete(s.ctx, []*broker.JobCompleteParams{
		{JobLeaseParams: lease(jobs[0]), Result: json.RawMessage(`1`)},
		{JobLeaseParams: lease(jobs[1]), Result: json.RawMessage(`2`), Delete: true},
		{JobLeaseParams: lease(jobs[2]), Result: json.RawMessage(`3`)},
	})
	if err != nil || len(errs) != 3 || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		s.t.Fatalf("JobComplete: %v, %v; want three nil errors", errs, err)
	}
	s.wantNotFound(q, byJob.ID)
	s.wantNotFound(q, byCall.ID)
	if j := s.wantState(q, kept.ID, broker.StateCompleted); !jsonEqual(j.Result, json.RawMessage(`3`)) {
		s.t.Fatalf("job completed in the same batch has result %s, want 3", j.Result)
	}
	s.wantCounts(q, counts{broker.StateCompleted: 1})
	wantIDs(s.t, "completed jobs listed", s.list(broker.JobListParams{Queue: q, State: broker.StateCompleted}), []string{kept.ID})
	st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: q, TenantID: "t1"})
	if err != nil || st.Active != 0 || st.Completed != 1 || st.Unfinished() != 0 {
		s.t.Fatalf("QueueStats of the jobs' tenant after they completed: %+v, %v; want 1 completed and nothing else", st, err)
	}
	for _, state := range []broker.State{broker.StateActive, broker.StateCompleted} {
		got := s.list(broker.JobListParams{Queue: q, State: state, TenantID: "t1"})
		if want := map[broker.State][]string{broker.StateCompleted: {kept.ID}}[state]; !slices.Equal(got, want) {
			s.t.Fatalf("JobList of the jobs' tenant, %s: %v, want %v", state, got, want)
		}
	}
	if err := s.completeErr(lease(jobs[0])); !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("completing a deleted job again: %v, want ErrNotFound", err)
	}
	s.insert(q, withID(byJob.ID), withKey("k1"))
	s.insert(q, withID(byCall.ID), withKey("k2"))

	// A job inserted by a commit (workflow steps, schedule ticks) asks for
	// it as any job does.
	if c, ok := s.b.(broker.Committer); ok {
		cq := "delete-on-complete-commit"
		p := s.params(cq, func(p *broker.JobInsertParams) { p.DeleteOnComplete = true })
		res, err := c.Commit(s.ctx, &broker.CommitParams{Scope: cq, Insert: []*broker.CommitInsert{{Job: p}}})
		if err != nil || len(res.Jobs) != 1 || res.Jobs[0] == nil || !res.Jobs[0].DeleteOnComplete {
			s.t.Fatalf("Commit inserting a job with DeleteOnComplete: %+v, %v; want the job, saying so", res, err)
		}
		if !s.get(cq, p.ID).DeleteOnComplete {
			s.t.Fatalf("job inserted by a commit with DeleteOnComplete reads back without it")
		}
		s.complete(s.fetchOne(cq, longLease), nil)
		s.wantNotFound(cq, p.ID)

		// A completion through a commit (a workflow step finishing) removes
		// such a job too, and one that asks for it with Delete.
		byJob := s.insert(cq, withKey("k3"), tenant, func(p *broker.JobInsertParams) { p.DeleteOnComplete = true })
		byCall := s.insert(cq, withKey("k4"), tenant)
		jobs := s.fetch(cq, 2, longLease)
		wantIDs(s.t, "fetch order", ids(jobs), []string{byJob.ID, byCall.ID})
		if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: cq, Complete: []*broker.JobCompleteParams{
			{JobLeaseParams: lease(jobs[0]), Result: json.RawMessage(`1`)},
			{JobLeaseParams: lease(jobs[1]), Result: json.RawMessage(`2`), Delete: true},
		}}); err != nil {
			s.t.Fatalf("Commit completing two jobs: %v", err)
		}
		s.wantNotFound(cq, byJob.ID)
		s.wantNotFound(cq, byCall.ID)
		s.wantCounts(cq, counts{})
		if got := s.list(broker.JobListParams{Queue: cq, State: broker.StateCompleted, TenantID: "t1"}); len(got) != 0 {
			s.t.Fatalf("JobList of the jobs' tenant, completed, after a commit removed them: %v, want none", got)
		}
		s.insert(cq, withKey("k3"))
		s.insert(cq, withKey("k4"))
	}
}

// testMaintainReportsIdle: QueueMaintain reports a queue idle only while
// it holds no pending, scheduled or active job, whatever finished jobs it
// keeps, since a worker leaves an idle queue's leases unwatched.
func testMaintainReportsIdle(s *bundle) {
	q := "maintain-idle"
	idle := func(want bool, when string) {
		s.t.Helper()
		if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Idle != want {
			s.t.Fatalf("QueueMaintain %s: Idle = %v, want %v", when, r.Idle, want)
		}
	}
	idle(true, "on a queue never used")
	a := s.insert(q)
	idle(false, "with a pending job")
	fa := s.fetchOne(q, longLease)
	if fa.ID != a.ID {
		s.t.Fatalf("fetched %s, want %s", fa.ID, a.ID)
	}
	idle(false, "with an active job only")
	s.complete(fa, nil)
	idle(true, "with a completed job only")
	s.insert(q, func(p *broker.JobInsertParams) { p.Delay = time.Hour })
	idle(false, "with a scheduled job only")
}
