package brokertest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

// recover polls QueueMaintain until job id leaves the active state, and
// returns the summed result.
func (s *bundle) recover(q, id string) broker.QueueMaintainResult {
	s.t.Helper()
	return s.recoverWith(&broker.QueueMaintainParams{Queue: q}, id)
}

// recoverWith is recover with p's rules (p.Queue is the job's queue).
func (s *bundle) recoverWith(p *broker.QueueMaintainParams, id string) broker.QueueMaintainResult {
	s.t.Helper()
	var sum broker.QueueMaintainResult
	s.waitFor("the expired lease of "+id+" to be recovered", func() bool {
		r := s.maintain(p)
		sum.Recovered += r.Recovered
		sum.Dead += r.Dead
		sum.Quarantined += r.Quarantined
		return s.get(p.Queue, id).State != broker.StateActive
	})
	return sum
}

// testLeaseExpiryRecovered: an expired lease is recovered by QueueMaintain,
// not before; the job is fetched again with the next attempt and a greater
// token; with no attempts left it goes to dead with a lease error.
func testLeaseExpiryRecovered(s *bundle) {
	q := "lease"
	a := s.insert(q)
	f1 := s.fetchOne(q, shortLease)
	if f1.Attempt != 1 {
		s.t.Fatalf("first fetch: Attempt %d, want 1", f1.Attempt)
	}
	// Maintenance before the lease expires must leave the job alone.
	early := s.maintain(&broker.QueueMaintainParams{Queue: q})
	if s.now().Before(f1.LeaseUntil) {
		if early.Recovered != 0 || early.Dead != 0 {
			s.t.Fatalf("QueueMaintain before the lease expired recovered %d, killed %d; want 0", early.Recovered, early.Dead)
		}
		s.wantState(q, a.ID, broker.StateActive)
	}

	// On a slow machine the short lease can expire before the early call,
	// which then rightly recovers the job: its counts belong to the sum.
	sum := s.recover(q, a.ID)
	sum.Recovered, sum.Dead = sum.Recovered+early.Recovered, sum.Dead+early.Dead
	if sum.Recovered != 1 || sum.Dead != 0 {
		s.t.Fatalf("QueueMaintain reported %d recovered, %d dead; want 1 recovered", sum.Recovered, sum.Dead)
	}
	j := s.wantState(q, a.ID, broker.StatePending)
	if j.Attempt != 1 {
		s.t.Fatalf("recovered job: Attempt %d, want 1 (the expired attempt counts)", j.Attempt)
	}
	f2 := s.fetchOne(q, longLease)
	if f2.ID != a.ID || f2.Attempt != 2 || f2.LeaseToken <= f1.LeaseToken {
		s.t.Fatalf("refetch: job %s attempt %d token %d; want %s attempt 2 token > %d", f2.ID, f2.Attempt, f2.LeaseToken, a.ID, f1.LeaseToken)
	}
	s.complete(f2, nil)

	// No attempts left: an expired lease kills the job.
	q = "lease-dead"
	b := s.insert(q, withAttempts(1))
	s.fetchOne(q, shortLease)
	if sum := s.recover(q, b.ID); sum.Dead != 1 || sum.Recovered != 0 {
		s.t.Fatalf("QueueMaintain on the last attempt reported %d recovered, %d dead; want 1 dead", sum.Recovered, sum.Dead)
	}
	d := s.wantState(q, b.ID, broker.StateDead)
	if !containsFold(d.LastError, "lease") || d.FinishedAt.IsZero() || d.Attempt != 1 {
		s.t.Fatalf("dead job: LastError %q, FinishedAt %v, Attempt %d; want an error naming the lease, a finish time, attempt 1", d.LastError, d.FinishedAt, d.Attempt)
	}
	s.fetchNone(q, "the dead job must not run again")
	s.wantCounts(q, counts{broker.StateDead: 1})
}

// testStaleTokenRejected: after a lease is recovered and refetched, every
// call with the old token (or a made-up one) returns ErrLeaseLost and
// changes nothing.
func testStaleTokenRejected(s *bundle) {
	q := "stale"
	a := s.insert(q)
	old := s.fetchOne(q, shortLease)
	s.recover(q, a.ID)
	cur := s.fetchOne(q, longLease)
	before := s.wantState(q, a.ID, broker.StateActive)

	s.rejectToken(lease(old), before, "the token of the expired lease")
	wrong := lease(cur)
	for _, tok := range []int64{cur.LeaseToken + 1, cur.LeaseToken + 1000, cur.LeaseToken - 1, 0} {
		wrong.Token = tok
		s.rejectToken(wrong, before, "a made-up token")
	}

	// A batch mixing a stale lease and a live one: only the stale one fails.
	b := s.insert(q)
	live := s.fetchOne(q, longLease)
	if live.ID != b.ID {
		s.t.Fatalf("fetched %s, want %s", live.ID, b.ID)
	}
	errs, err := s.b.JobComplete(s.ctx, []*broker.JobCompleteParams{{JobLeaseParams: lease(old)}, {JobLeaseParams: lease(live)}})
	if err != nil || len(errs) != 2 {
		s.t.Fatalf("JobComplete of [stale, live] = %v, %v; want two per-job errors", errs, err)
	}
	wantErr(s.t, "JobComplete of the stale lease in a batch", errs[0], broker.ErrLeaseLost)
	if errs[1] != nil {
		s.t.Fatalf("JobComplete of the live lease in a batch with a stale one: %v, want nil", errs[1])
	}
	s.wantState(q, b.ID, broker.StateCompleted)

	// The current token still works, and once completed the old one still fails.
	s.complete(cur, json.RawMessage(`{"ok":true}`))
	s.wantState(q, a.ID, broker.StateCompleted)
	wantErr(s.t, "JobComplete with the stale token of a completed job", s.completeErr(lease(old)), broker.ErrLeaseLost)
	wantErr(s.t, "JobComplete again with the token that completed it", s.completeErr(lease(cur)), broker.ErrLeaseLost)

	// Unknown jobs are ErrNotFound, per job.
	unknown := broker.JobLeaseParams{Queue: q, ID: "no-such-job", Token: 1}
	wantErr(s.t, "JobComplete of an unknown job", s.completeErr(unknown), broker.ErrNotFound)
	wantErr(s.t, "JobLeaseExtend of an unknown job", s.extendErr(unknown, time.Minute), broker.ErrNotFound)
	_, err = s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: unknown, Error: "x"})
	wantErr(s.t, "JobFail of an unknown job", err, broker.ErrNotFound)
	wantErr(s.t, "JobRelease of an unknown job", s.b.JobRelease(s.ctx, &unknown), broker.ErrNotFound)
}

// rejectToken calls every lease-taking method with lp, expects ErrLeaseLost
// from each, and checks the job is as before.
func (s *bundle) rejectToken(lp broker.JobLeaseParams, before *broker.Job, what string) {
	s.t.Helper()
	wantErr(s.t, "JobComplete with "+what, s.completeErr(lp), broker.ErrLeaseLost)
	st, err := s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "stale failure", Discard: true})
	wantErr(s.t, "JobFail with "+what+" (new state "+string(st)+")", err, broker.ErrLeaseLost)
	wantErr(s.t, "JobLeaseExtend with "+what, s.extendErr(lp, time.Hour), broker.ErrLeaseLost)
	wantErr(s.t, "JobProgress with "+what, s.b.JobProgress(s.ctx, &lp, json.RawMessage(`{"pct":99}`)), broker.ErrLeaseLost)
	wantErr(s.t, "JobRelease with "+what, s.b.JobRelease(s.ctx, &lp), broker.ErrLeaseLost)

	after := s.get(lp.Queue, lp.ID)
	if after.State != before.State || after.Attempt != before.Attempt || !after.LeaseUntil.Equal(before.LeaseUntil) ||
		after.LastError != before.LastError || !jsonEqual(after.Result, before.Result) ||
		!jsonEqual(after.Progress, before.Progress) || !after.FinishedAt.Equal(before.FinishedAt) || !after.RunAt.Equal(before.RunAt) {
		s.t.Fatalf("calls with %s changed the job:\n before %+v\n after  %+v", what, *before, *after)
	}
}

// testLeaseExtend: an extended lease outlives its original expiry, while a
// job fetched alongside without extension is recovered.
func testLeaseExtend(s *bundle) {
	q := "extend"
	a := s.insert(q)
	b := s.insert(q)
	fa := s.fetchOne(q, shortLease)
	fb := s.fetchOne(q, shortLease) // expires no earlier than fa's original lease
	if fa.ID != a.ID || fb.ID != b.ID {
		s.t.Fatalf("fetched %s, %s; want %s, %s", fa.ID, fb.ID, a.ID, b.ID)
	}
	errs, err := s.b.JobLeaseExtend(s.ctx, []*broker.JobLeaseParams{{Queue: q, ID: fa.ID, Token: fa.LeaseToken}, {Queue: q, ID: "no-such-job", Token: 1}}, longLease)
	if err != nil || len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], broker.ErrNotFound) {
		s.t.Fatalf("JobLeaseExtend([live, unknown]) = %v, %v; want [nil, ErrNotFound]", errs, err)
	}
	if ga := s.get(q, a.ID); ga.LeaseUntil.Before(fa.LeaseUntil.Add(longLease - time.Second)) {
		s.t.Fatalf("extended job: LeaseUntil %v, want about now + %v (the original was %v)", ga.LeaseUntil, longLease, fa.LeaseUntil)
	}

	// Wait until the broker recovers b: the broker clock is then past a's
	// original lease too, and a must still be active under its token.
	s.recover(q, b.ID)
	s.wantState(q, b.ID, broker.StatePending)
	s.wantState(q, a.ID, broker.StateActive)
	if err := s.extendErr(lease(fa), longLease); err != nil {
		s.t.Fatalf("second JobLeaseExtend of the live lease: %v", err)
	}
	s.complete(fa, nil)
	s.wantState(q, a.ID, broker.StateCompleted)
}

// testReleaseReturnsToPending: a released job is pending at once and its
// attempt is not counted.
func testReleaseReturnsToPending(s *bundle) {
	q := "release"
	a := s.insert(q, withAttempts(1))
	f1 := s.fetchOne(q, longLease)
	if err := s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: a.ID, Token: f1.LeaseToken}); err != nil {
		s.t.Fatalf("JobRelease: %v", err)
	}
	if j := s.wantState(q, a.ID, broker.StatePending); j.Attempt != 0 {
		s.t.Fatalf("released job: Attempt %d, want 0 (the released attempt is not counted)", j.Attempt)
	}
	s.wantCounts(q, counts{broker.StatePending: 1})
	f2 := s.fetchOne(q, longLease) // MaxAttempts 1: only possible if the release was not counted
	if f2.ID != a.ID || f2.Attempt != 1 || f2.LeaseToken <= f1.LeaseToken {
		s.t.Fatalf("refetch after release: %s attempt %d token %d; want %s attempt 1 token > %d", f2.ID, f2.Attempt, f2.LeaseToken, a.ID, f1.LeaseToken)
	}
	wantErr(s.t, "JobRelease with the token of the released lease", s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: a.ID, Token: f1.LeaseToken}), broker.ErrLeaseLost)
	s.complete(f2, nil)
	s.wantState(q, a.ID, broker.StateCompleted)
}

// testProgress: progress of an active job is stored and readable, replaced
// by later reports, and rejected once the job is no longer active.
func testProgress(s *bundle) {
	q := "progress"
	a := s.insert(q)
	f := s.fetchOne(q, longLease)
	lp := lease(f)
	for _, p := range []string{`{"pct":50}`, `{"pct":80,"step":"totals"}`} {
		if err := s.b.JobProgress(s.ctx, &lp, json.RawMessage(p)); err != nil {
			s.t.Fatalf("JobProgress(%s): %v", p, err)
		}
		if j := s.get(q, a.ID); !jsonEqual(j.Progress, json.RawMessage(p)) {
			s.t.Fatalf("after JobProgress(%s): Progress %s", p, j.Progress)
		}
	}
	s.complete(f, nil)
	done := s.get(q, a.ID).Progress
	wantErr(s.t, "JobProgress of a completed job", s.b.JobProgress(s.ctx, &lp, json.RawMessage(`{"pct":100}`)), broker.ErrLeaseLost)
	if j := s.get(q, a.ID); !jsonEqual(j.Progress, done) {
		s.t.Fatalf("rejected JobProgress changed Progress from %s to %s", done, j.Progress)
	}

	// A job that is only pending has no lease to report progress under.
	b := s.insert(q)
	wantErr(s.t, "JobProgress of a pending job", s.b.JobProgress(s.ctx, &broker.JobLeaseParams{Queue: q, ID: b.ID, Token: f.LeaseToken}, json.RawMessage(`{"pct":1}`)), broker.ErrLeaseLost)
	if j := s.wantState(q, b.ID, broker.StatePending); len(j.Progress) != 0 {
		s.t.Fatalf("rejected JobProgress stored %s on a pending job", j.Progress)
	}
}

// testRecoveredKeepPlace: a job whose lease expired, or that was handed
// back, goes back to its place in the queue, not to the back: it is fetched
// before the jobs of its priority enqueued after it (so a crashed worker
// costs its jobs about one lease, not the length of the backlog), and still
// after more urgent jobs.
func testRecoveredKeepPlace(s *bundle) {
	q := "place"
	a := s.insert(q)
	b := s.insert(q)
	if f := s.fetchOne(q, shortLease); f.ID != a.ID {
		s.t.Fatalf("first fetch: %s, want %s", f.ID, a.ID)
	}
	c := s.insert(q)
	u := s.insert(q, withPriority(1))
	s.recover(q, a.ID)
	s.wantOrder(q, u.ID, a.ID, b.ID, c.ID)

	q = "place-release"
	a = s.insert(q)
	b = s.insert(q)
	f := s.fetchOne(q, longLease)
	c = s.insert(q)
	if err := s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: f.ID, Token: f.LeaseToken}); err != nil {
		s.t.Fatalf("JobRelease: %v", err)
	}
	s.wantOrder(q, a.ID, b.ID, c.ID)
}

// wantOrder fetches the queue's pending jobs one at a time and checks they
// come in the order of ids.
func (s *bundle) wantOrder(q string, ids ...string) {
	s.t.Helper()
	var got []string
	for range ids {
		got = append(got, s.fetchOne(q, longLease).ID)
	}
	for i := range ids {
		if got[i] != ids[i] {
			s.t.Fatalf("fetch order %v, want %v", got, ids)
		}
	}
}
