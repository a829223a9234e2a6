package brokertest

import (
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// wantAttempt is what the suite expects of one history entry; fetched is
// the job as its attempt's fetch returned it (its StartedAt and number).
type wantAttempt struct {
	fetched *broker.Job
	outcome broker.AttemptOutcome
	err     string // the entry's error: "" for none; "~text" for one containing text
}

// wantHistory fails the case unless JobGet shows want as the job's history,
// oldest first.
func (s *bundle) wantHistory(queue, id string, want ...wantAttempt) *broker.Job {
	s.t.Helper()
	j := s.get(queue, id)
	describe := func() string {
		var b strings.Builder
		for _, a := range j.Attempts {
			e := a.Error
			if len(e) > 40 {
				e = e[:40] + "…"
			}
			fmt.Fprintf(&b, "\n\t#%d %s by %q %v..%v %q", a.Attempt, a.Outcome, a.WorkerID, a.StartedAt, a.FinishedAt, e)
		}
		return b.String()
	}
	if len(j.Attempts) != len(want) {
		s.t.Fatalf("job %s (%s) has %d attempts in its history, want %d:%s", id, j.State, len(j.Attempts), len(want), describe())
	}
	for i, w := range want {
		a := j.Attempts[i]
		okErr := a.Error == w.err
		if text, ok := strings.CutPrefix(w.err, "~"); ok {
			okErr = containsFold(a.Error, text)
		}
		if a.Attempt != w.fetched.Attempt || a.Outcome != w.outcome || a.WorkerID != workerID || !okErr ||
			a.StartedAt.Sub(w.fetched.StartedAt).Abs() > timeSlack || a.FinishedAt.Before(a.StartedAt.Add(-timeSlack)) {
			s.t.Fatalf("job %s attempt entry %d: #%d %s by %q started %v finished %v, error of %d bytes;"+
				" want #%d %s by %q started %v (as fetched), finished after, error %q:%s",
				id, i, a.Attempt, a.Outcome, a.WorkerID, a.StartedAt, a.FinishedAt, len(a.Error),
				w.fetched.Attempt, w.outcome, workerID, w.fetched.StartedAt, w.err, describe())
		}
	}
	return j
}

// testAttemptHistory: JobGet lists a job's finished attempts, oldest first,
// each with its number, worker, start, finish, outcome and (cut) error, for
// every way an attempt ends: failure with a retry, hand-back, lease expiry
// (back to pending, or dead), completion, failure with none left, and
// cancellation of the active job; also through Commit. The last
// broker.MaxAttemptHistory attempts are kept. Fetch and list carry no
// history; a job never started has none.
func testAttemptHistory(s *bundle) {
	q := "history"
	a := s.insert(q, withAttempts(3))
	// An error longer than the cut, with a two-byte rune across it.
	long := strings.Repeat("x", broker.MaxAttemptErrorBytes-1) + "é and more"
	f1 := s.fetchOne(q, longLease)
	if st := s.fail(f1, long, 0, false); st != broker.StateScheduled {
		s.t.Fatalf("first failure with attempts left: %s, want scheduled", st)
	}
	f2 := s.fetchWait(q, longLease)
	if err := s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: f2.ID, Token: f2.LeaseToken}); err != nil {
		s.t.Fatalf("JobRelease: %v", err)
	}
	f3 := s.fetchOne(q, shortLease)
	s.recover(q, a.ID)
	f4 := s.fetchOne(q, longLease)
	if f4.Attempts != nil {
		s.t.Fatalf("JobFetch returned job %s with %d history entries; only JobGet fills Attempts", f4.ID, len(f4.Attempts))
	}
	s.complete(f4, nil)
	s.wantHistory(q, a.ID,
		wantAttempt{f1, broker.AttemptRetryScheduled, long[:broker.MaxAttemptErrorBytes-1]},
		wantAttempt{f2, broker.AttemptHandedBack, ""},
		wantAttempt{f3, broker.AttemptLeaseExpired, "~lease"},
		wantAttempt{f4, broker.AttemptCompleted, ""})
	page, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: broker.StateCompleted})
	if err != nil || len(page.Jobs) != 1 {
		s.t.Fatalf("JobList of completed jobs: %v, %v; want job %s", page, err, a.ID)
	}
	if page.Jobs[0].Attempts != nil {
		s.t.Fatalf("JobList returned job %s with %d history entries; only JobGet fills Attempts", a.ID, len(page.Jobs[0].Attempts))
	}

	// The last attempt fails: dead; the lease of the last attempt expires:
	// dead too.
	b := s.insert(q, withAttempts(1))
	fb := s.fetchOne(q, longLease)
	s.fail(fb, "no luck", time.Hour, false)
	s.wantHistory(q, b.ID, wantAttempt{fb, broker.AttemptDead, "no luck"})
	c := s.insert(q, withAttempts(1))
	fc := s.fetchOne(q, shortLease)
	s.recover(q, c.ID)
	if j := s.wantHistory(q, c.ID, wantAttempt{fc, broker.AttemptLeaseExpired, "~lease"}); j.State != broker.StateDead {
		s.t.Fatalf("job %s whose last lease expired is %s, want dead", c.ID, j.State)
	}

	// Cancelling the active job ends its attempt; a job cancelled before
	// it ran has no attempt.
	d := s.insert(q)
	fd := s.fetchOne(q, longLease)
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: d.ID}); err != nil {
		s.t.Fatalf("JobCancel(active %s): %v", d.ID, err)
	}
	s.wantHistory(q, d.ID, wantAttempt{fd, broker.AttemptCancelled, ""})
	e := s.insert(q)
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: e.ID}); err != nil {
		s.t.Fatalf("JobCancel(pending %s): %v", e.ID, err)
	}
	s.wantHistory(q, e.ID)

	// Only the last MaxAttemptHistory attempts are kept.
	q = "history-trim"
	n := broker.MaxAttemptHistory + 3
	t := s.insert(q, withAttempts(n))
	var tried []wantAttempt
	for range n - 1 {
		f := s.fetchWait(q, longLease)
		s.fail(f, fmt.Sprintf("failure %d", f.Attempt), 0, false)
		tried = append(tried, wantAttempt{f, broker.AttemptRetryScheduled, fmt.Sprintf("failure %d", f.Attempt)})
	}
	last := s.fetchWait(q, longLease)
	s.complete(last, nil)
	tried = append(tried, wantAttempt{last, broker.AttemptCompleted, ""})
	s.wantHistory(q, t.ID, tried[n-broker.MaxAttemptHistory:]...)

	testAttemptHistoryCommit(s)
}

// testAttemptHistoryCommit: Commit's failures, completions and cancels of
// active jobs are recorded as JobFail, JobComplete and JobCancel record
// them.
func testAttemptHistoryCommit(s *bundle) {
	c, ok := s.b.(broker.Committer)
	if !ok {
		return
	}
	q := "history-commit"
	commit := func(p *broker.CommitParams) {
		s.t.Helper()
		p.Scope = q
		if _, err := c.Commit(s.ctx, p); err != nil {
			s.t.Fatalf("Commit: %v", err)
		}
	}
	a := s.insert(q)
	f1 := s.fetchOne(q, longLease)
	commit(&broker.CommitParams{Fail: []*broker.JobFailParams{{JobLeaseParams: lease(f1), Error: "step failed"}}})
	f2 := s.fetchWait(q, longLease)
	commit(&broker.CommitParams{Complete: []*broker.JobCompleteParams{{JobLeaseParams: lease(f2)}}})
	s.wantHistory(q, a.ID,
		wantAttempt{f1, broker.AttemptRetryScheduled, "step failed"},
		wantAttempt{f2, broker.AttemptCompleted, ""})
	b := s.insert(q, withAttempts(1))
	fb := s.fetchOne(q, longLease)
	commit(&broker.CommitParams{Fail: []*broker.JobFailParams{{JobLeaseParams: lease(fb), Error: "last step failed"}}})
	s.wantHistory(q, b.ID, wantAttempt{fb, broker.AttemptDead, "last step failed"})
	d := s.insert(q)
	fd := s.fetchOne(q, longLease)
	commit(&broker.CommitParams{Cancel: []string{d.ID}})
	s.wantHistory(q, d.ID, wantAttempt{fd, broker.AttemptCancelled, ""})
}
