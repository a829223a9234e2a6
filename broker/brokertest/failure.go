package brokertest

import (
	"errors"
	"maps"
	"time"

	"github.com/aibos/worker/broker"
)

// testFailMaxAttemptsOverride: JobFailParams.MaxAttempts > 0 replaces the
// job's MaxAttempts for the retry-or-dead decision and is stored on the
// job, so the next failure without an override uses it too.
func testFailMaxAttemptsOverride(s *bundle) {
	q := "fail-max"
	failWith := func(j *broker.Job, maxAttempts int, discard bool) broker.State {
		s.t.Helper()
		st, err := s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: lease(j), Error: "boom", MaxAttempts: maxAttempts, Discard: discard})
		if err != nil {
			s.t.Fatalf("JobFail(%s, max attempts %d): %v", j.ID, maxAttempts, err)
		}
		return st
	}

	// More attempts than the job was enqueued with.
	a := s.insert(q, withAttempts(1))
	if st := failWith(s.fetchOne(q, longLease), 3, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail on attempt 1 with MaxAttempts override 3 (job has 1): state %q, want scheduled", st)
	}
	if j := s.wantState(q, a.ID, broker.StateScheduled); j.MaxAttempts != 3 {
		s.t.Fatalf("after JobFail with MaxAttempts 3: job MaxAttempts %d, want 3 stored", j.MaxAttempts)
	}
	if st := s.fail(s.fetchWait(q, longLease), "boom 2", 0, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail on attempt 2 without override after an override of 3: state %q, want scheduled", st)
	}
	f := s.fetchWait(q, longLease)
	if f.ID != a.ID || f.Attempt != 3 || f.MaxAttempts != 3 {
		s.t.Fatalf("fetched %s attempt %d of %d, want %s attempt 3 of 3", f.ID, f.Attempt, f.MaxAttempts, a.ID)
	}
	if st := s.fail(f, "boom 3", 0, false); st != broker.StateDead {
		s.t.Fatalf("JobFail on attempt 3 of an overridden 3: state %q, want dead", st)
	}

	// Fewer attempts than the job was enqueued with.
	b := s.insert(q, withAttempts(5))
	if st := failWith(s.fetchOne(q, longLease), 1, false); st != broker.StateDead {
		s.t.Fatalf("JobFail on attempt 1 with MaxAttempts override 1 (job has 5): state %q, want dead", st)
	}
	if j := s.wantState(q, b.ID, broker.StateDead); j.MaxAttempts != 1 || j.FinishedAt.IsZero() {
		s.t.Fatalf("dead by override: MaxAttempts %d, FinishedAt %v; want 1 and a finish time", j.MaxAttempts, j.FinishedAt)
	}

	// Discard wins over an override.
	c := s.insert(q, withAttempts(1))
	if st := failWith(s.fetchOne(q, longLease), 10, true); st != broker.StateDead {
		s.t.Fatalf("JobFail with Discard and MaxAttempts override 10: state %q, want dead", st)
	}
	s.wantState(q, c.ID, broker.StateDead)
	s.wantCounts(q, counts{broker.StateDead: 3})
}

// testOldestPending: QueueStats.OldestPendingAt is the RunAt of the pending
// job that has waited longest, across priorities, and zero when none is
// pending.
func testOldestPending(s *bundle) {
	q := "oldest"
	if st := s.stats(q); !st.OldestPendingAt.IsZero() {
		s.t.Fatalf("QueueStats of an empty queue: OldestPendingAt %v, want zero", st.OldestPendingAt)
	}
	old := s.insert(q)
	s.waitPast(old.RunAt.Add(5 * time.Millisecond))
	young := s.insert(q, withPriority(1)) // first in line, but younger
	s.insert(q, withDelay(time.Hour))     // scheduled: not pending
	if st := s.stats(q); !near(st.OldestPendingAt, old.RunAt) {
		s.t.Fatalf("QueueStats: OldestPendingAt %v, want %v (the oldest pending job, not the first in line at %v)",
			st.OldestPendingAt, old.RunAt, young.RunAt)
	}
	wantIDs(s.t, "fetch order", ids(s.fetch(q, 1, longLease)), []string{young.ID})
	if st := s.stats(q); !near(st.OldestPendingAt, old.RunAt) {
		s.t.Fatalf("QueueStats after fetching the younger job: OldestPendingAt %v, want %v", st.OldestPendingAt, old.RunAt)
	}
	wantIDs(s.t, "fetch order", ids(s.fetch(q, 1, longLease)), []string{old.ID})
	if st := s.stats(q); !st.OldestPendingAt.IsZero() {
		s.t.Fatalf("QueueStats with nothing pending: OldestPendingAt %v, want zero", st.OldestPendingAt)
	}
}

// testFailMergesHeaders: JobFailParams.Headers are merged into the job's
// headers in the failure's transition (a key already there takes the new
// value, the others stay), whether the job is retried or dead, and the
// next attempt's fetch returns them; a failure without headers leaves them
// as they are. Commit's failures (broker.Committer) merge them the same way.
func testFailMergesHeaders(s *bundle) {
	q := "fail-headers"
	wantHeaders := func(when string, j *broker.Job, want map[string]string) {
		s.t.Helper()
		if !maps.Equal(j.Headers, want) {
			s.t.Fatalf("%s: job %s has headers %v, want %v", when, j.ID, j.Headers, want)
		}
	}
	failWith := func(j *broker.Job, h map[string]string, discard bool) broker.State {
		s.t.Helper()
		st, err := s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: lease(j), Error: "boom", Discard: discard, Headers: h})
		if err != nil {
			s.t.Fatalf("JobFail(%s) with headers %v: %v", j.ID, h, err)
		}
		return st
	}

	a := s.insert(q, withAttempts(3), func(p *broker.JobInsertParams) { p.Headers = map[string]string{"origin": "web", "attempt": "0"} })
	if st := failWith(s.fetchOne(q, longLease), map[string]string{"attempt": "1", "span": "s1"}, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail on attempt 1 of 3: state %q, want scheduled", st)
	}
	merged := map[string]string{"origin": "web", "attempt": "1", "span": "s1"}
	wantHeaders("after a failure with headers", s.wantState(q, a.ID, broker.StateScheduled), merged)
	f := s.fetchWait(q, longLease)
	wantHeaders("the retry's fetch", f, merged)
	if st := failWith(f, nil, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail on attempt 2 of 3: state %q, want scheduled", st)
	}
	wantHeaders("after a failure without headers", s.wantState(q, a.ID, broker.StateScheduled), merged)
	if st := failWith(s.fetchWait(q, longLease), map[string]string{"span": "s3"}, true); st != broker.StateDead {
		s.t.Fatalf("JobFail with Discard: state %q, want dead", st)
	}
	wantHeaders("after a failure that killed it", s.wantState(q, a.ID, broker.StateDead),
		map[string]string{"origin": "web", "attempt": "1", "span": "s3"})

	// A job inserted without headers gets the failure's.
	b := s.insert(q, withAttempts(2))
	failWith(s.fetchOne(q, longLease), map[string]string{"span": "b1"}, false)
	bj := s.fetchWait(q, longLease)
	wantHeaders("a job without headers, after a failure with some", bj, map[string]string{"span": "b1"})
	// Headers an insert could not have are refused, and nothing changes.
	if _, err := s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: lease(bj), Error: "boom",
		Headers: map[string]string{"": "no name"}}); !errors.Is(err, broker.ErrInvalidJob) {
		s.t.Fatalf("JobFail with a header without a name: err %v, want one wrapping ErrInvalidJob", err)
	}
	wantHeaders("after a refused failure", s.wantState(q, b.ID, broker.StateActive), map[string]string{"span": "b1"})

	c, ok := s.b.(broker.Committer)
	if !ok {
		return
	}
	d := s.insert(q, withAttempts(2), func(p *broker.JobInsertParams) { p.Headers = map[string]string{"origin": "cron"} })
	j := s.fetchOne(q, longLease)
	if j.ID != d.ID {
		s.t.Fatalf("fetched %s, want %s (job %s is still active)", j.ID, d.ID, b.ID)
	}
	if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Fail: []*broker.JobFailParams{
		{JobLeaseParams: lease(j), Error: "boom", Headers: map[string]string{"span": "d1"}}}}); err != nil {
		s.t.Fatalf("Commit of a failure with headers: %v", err)
	}
	wantHeaders("after a committed failure with headers", s.fetchWait(q, longLease), map[string]string{"origin": "cron", "span": "d1"})
}
