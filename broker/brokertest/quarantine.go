package brokertest

import (
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

// testQuarantineAfterCrashes: with MaxCrashes n, the lease recovery that
// ends a run of n lease expiries in a row sends the job to dead with
// QuarantineReason(n), attempts left or not; a failure or a hand-back in
// between starts the run again, and with the rule off (0) expiries alone
// never quarantine. A job recovered after its second expiry in a row or
// later waits as scheduled, less than CrashSpread; after a first one it is
// pending at once. Out-of-range values are refused.
func testQuarantineAfterCrashes(s *bundle) {
	q := "quarantine"
	const spread = 500 * time.Millisecond
	rule := &broker.QueueMaintainParams{Queue: q, MaxCrashes: 3, CrashSpread: spread}
	expire := func(id string) broker.QueueMaintainResult {
		s.t.Helper()
		f := s.fetchWait(q, shortLease)
		if f.ID != id {
			s.t.Fatalf("fetched job %s, want %s (the only one)", f.ID, id)
		}
		return s.recoverWith(rule, id)
	}
	recovered := func(id, what string, want broker.State) {
		s.t.Helper()
		if r := expire(id); r.Recovered != 1 || r.Dead != 0 || r.Quarantined != 0 {
			s.t.Fatalf("%s: recovery reported %d recovered, %d dead, %d quarantined; want 1 recovered", what, r.Recovered, r.Dead, r.Quarantined)
		}
		j := s.get(q, id)
		if j.State == broker.StateScheduled && want == broker.StateScheduled && j.RunAt.After(s.now().Add(spread)) {
			s.t.Fatalf("%s: job %s is scheduled for %v, beyond the crash spread %v", what, id, j.RunAt, spread)
		}
		if j.State != want {
			s.t.Fatalf("%s: job %s is %s, want %s", what, id, j.State, want)
		}
	}
	pendingAfter := func(id, what string) { s.t.Helper(); recovered(id, what, broker.StatePending) }
	scheduledAfter := func(id, what string) { s.t.Helper(); recovered(id, what, broker.StateScheduled) }

	a := s.insert(q, withAttempts(20))
	pendingAfter(a.ID, "first expiry")
	f := s.fetchWait(q, longLease)
	if st := s.fail(f, "ordinary failure", 0, false); st == broker.StateDead {
		s.t.Fatalf("a failure with attempts left made job %s dead", a.ID)
	}
	pendingAfter(a.ID, "first expiry after a failure")
	scheduledAfter(a.ID, "second expiry in a row")
	f = s.fetchWait(q, longLease)
	if lp := lease(f); s.b.JobRelease(s.ctx, &lp) != nil {
		s.t.Fatalf("JobRelease(%s) failed", a.ID)
	}
	pendingAfter(a.ID, "first expiry after a hand-back")
	scheduledAfter(a.ID, "second expiry in a row")
	r := expire(a.ID)
	if r.Dead != 1 || r.Quarantined != 1 || r.Recovered != 0 {
		s.t.Fatalf("third expiry in a row: recovery reported %d recovered, %d dead, %d quarantined; want 1 dead, quarantined",
			r.Recovered, r.Dead, r.Quarantined)
	}
	d := s.wantState(q, a.ID, broker.StateDead)
	if want := broker.QuarantineReason(3); d.LastError != want || d.FinishedAt.IsZero() {
		s.t.Fatalf("quarantined job: LastError %q, FinishedAt %v; want %q and a finish time", d.LastError, d.FinishedAt, want)
	}
	s.fetchNone(q, "the quarantined job must not run again")

	// A job spread out keeps its place: it runs before a job added after it.
	pq := "quarantine-place"
	c := s.insert(pq, withAttempts(20))
	for range 2 {
		s.fetchWait(pq, shortLease)
		s.recoverWith(&broker.QueueMaintainParams{Queue: pq, MaxCrashes: 3, CrashSpread: spread}, c.ID)
	}
	due := s.wantState(pq, c.ID, broker.StateScheduled).RunAt
	later := s.insert(pq)
	s.waitFor("the spread-out job to be due", func() bool { return !s.now().Before(due) })
	if f := s.fetchOne(pq, longLease); f.ID != c.ID {
		s.t.Fatalf("fetched %s first; want the spread-out job %s, added before %s", f.ID, c.ID, later.ID)
	}

	// With the rule off, three expiries in a row leave the job pending.
	off := "quarantine-off"
	b := s.insert(off, withAttempts(20))
	for i := range 3 {
		s.fetchWait(off, shortLease)
		if r := s.recover(off, b.ID); r.Recovered != 1 || r.Quarantined != 0 {
			s.t.Fatalf("expiry %d without the rule: %d recovered, %d quarantined; want 1 recovered", i+1, r.Recovered, r.Quarantined)
		}
	}
	s.wantState(off, b.ID, broker.StatePending)

	for _, n := range []int{-1, broker.MaxAttemptHistory + 1} {
		_, err := s.b.QueueMaintain(s.ctx, &broker.QueueMaintainParams{Queue: q, MaxCrashes: n})
		if !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Fatalf("QueueMaintain with MaxCrashes %d: %v; want ErrInvalidJob", n, err)
		}
	}
}
