package brokertest

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// testTTLExpiry: a pending job not started before its TTL runs out is
// expired, by JobFetch or by QueueMaintain, and never returned.
func testTTLExpiry(s *bundle) {
	const ttl = 300 * time.Millisecond
	qf, qm := "ttl-fetch", "ttl-maintain"
	xf := s.insert(qf, withTTL(ttl))
	keep := s.insert(qf, withTTL(time.Hour), withPriority(broker.DefaultPriority+1))
	xm := s.insert(qm, withTTL(ttl))
	for _, x := range []*broker.Job{xf, xm} {
		if j := s.get(x.Queue, x.ID); !near(j.ExpiresAt, j.RunAt.Add(ttl)) {
			s.t.Fatalf("job with TTL %v: ExpiresAt %v, want RunAt %v + TTL", ttl, j.ExpiresAt, j.RunAt)
		}
	}
	if j := s.get(qf, s.insert(qf, withDelay(time.Hour), withTTL(time.Minute)).ID); !near(j.ExpiresAt, j.RunAt.Add(time.Minute)) {
		s.t.Fatalf("delayed job with TTL 1m: ExpiresAt %v, want its due time %v + TTL", j.ExpiresAt, j.RunAt)
	}
	s.waitPast(s.get(qm, xm.ID).ExpiresAt)

	// By fetch: the expired job, first in line, is skipped and expired.
	wantIDs(s.t, "fetch after the TTL of the first job ran out", ids(s.fetch(qf, 10, longLease)), []string{keep.ID})
	if j := s.wantState(qf, xf.ID, broker.StateExpired); j.FinishedAt.IsZero() || j.Attempt != 0 {
		s.t.Fatalf("expired job: FinishedAt %v, Attempt %d; want a finish time and no attempt", j.FinishedAt, j.Attempt)
	}
	s.wantCounts(qf, counts{broker.StateActive: 1, broker.StateExpired: 1, broker.StateScheduled: 1})

	// By maintenance.
	if r := s.maintain(&broker.QueueMaintainParams{Queue: qm}); r.Expired != 1 {
		s.t.Fatalf("QueueMaintain after the TTL ran out: expired %d, want 1", r.Expired)
	}
	s.wantState(qm, xm.ID, broker.StateExpired)
	s.fetchNone(qm, "the only job expired")
	s.wantCounts(qm, counts{broker.StateExpired: 1})
}

// testRetryUntilDead: failures retry after RetryDelay until MaxAttempts,
// then the job is dead; Discard kills at once; JobRetry revives a dead job.
func testRetryUntilDead(s *bundle) {
	var q string
	var a, f *broker.Job
	s.untilDecided("retry", 400*time.Millisecond, "fail a job and fetch before its retry was due", func(tq string, retryDelay time.Duration) bool {
		q = tq
		a = s.insert(q, withAttempts(3))
		f = s.fetchOne(q, longLease)
		before := s.now()
		if st := s.fail(f, "boom 1", retryDelay, false); st != broker.StateScheduled {
			s.t.Fatalf("JobFail on attempt 1 of 3: state %q, want scheduled", st)
		}
		after := s.now()
		j := s.wantState(q, a.ID, broker.StateScheduled)
		if j.LastError != "boom 1" || j.RunAt.Before(before.Add(retryDelay-timeSlack)) || j.RunAt.After(after.Add(retryDelay+timeSlack)) {
			s.t.Fatalf("failed job: LastError %q, RunAt %v; want %q and due %v after the failure (between %v and %v)",
				j.LastError, j.RunAt, "boom 1", retryDelay, before, after)
		}
		early := s.fetch(q, 10, longLease) // the fetch helper also checks StartedAt >= RunAt
		if !s.now().Before(j.RunAt) {
			return false // due by now: fetched early or not, it cannot tell
		}
		if len(early) > 0 {
			s.t.Fatalf("fetched %v before the retry was due at %v", ids(early), j.RunAt)
		}
		return true
	})

	f = s.fetchWait(q, longLease)
	if f.ID != a.ID || f.Attempt != 2 {
		s.t.Fatalf("retry: fetched %s attempt %d, want %s attempt 2", f.ID, f.Attempt, a.ID)
	}
	if st := s.fail(f, "boom 2", 0, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail on attempt 2 of 3: state %q, want scheduled", st)
	}
	f = s.fetchWait(q, longLease)
	if f.ID != a.ID || f.Attempt != 3 {
		s.t.Fatalf("retry: fetched %s attempt %d, want %s attempt 3", f.ID, f.Attempt, a.ID)
	}
	if st := s.fail(f, "boom 3", time.Minute, false); st != broker.StateDead {
		s.t.Fatalf("JobFail on attempt 3 of 3: state %q, want dead", st)
	}
	j := s.wantState(q, a.ID, broker.StateDead)
	if j.Attempt != 3 || j.LastError != "boom 3" || j.FinishedAt.IsZero() {
		s.t.Fatalf("dead job: Attempt %d, LastError %q, FinishedAt %v; want 3, %q, set", j.Attempt, j.LastError, j.FinishedAt, "boom 3")
	}
	s.fetchNone(q, "the dead job must not run again")

	// Discard: dead at once with attempts left.
	b := s.insert(q, withAttempts(5))
	if st := s.fail(s.fetchOne(q, longLease), "fatal", 0, true); st != broker.StateDead {
		s.t.Fatalf("JobFail with Discard: state %q, want dead", st)
	}
	if j := s.wantState(q, b.ID, broker.StateDead); j.Attempt != 1 || j.LastError != "fatal" {
		s.t.Fatalf("discarded job: Attempt %d, LastError %q; want 1, %q", j.Attempt, j.LastError, "fatal")
	}
	s.wantCounts(q, counts{broker.StateDead: 2})

	// JobRetry revives a dead job with a fresh attempt count.
	r, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: a.ID})
	if err != nil || r.State != broker.StatePending || r.Attempt != 0 {
		s.t.Fatalf("JobRetry of a dead job = %+v, %v; want pending with Attempt 0", r, err)
	}
	s.wantCounts(q, counts{broker.StateDead: 1, broker.StatePending: 1})
	f = s.fetchOne(q, longLease)
	if f.ID != a.ID || f.Attempt != 1 {
		s.t.Fatalf("after JobRetry: fetched %s attempt %d, want %s attempt 1", f.ID, f.Attempt, a.ID)
	}
	_, err = s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: a.ID})
	wantErr(s.t, "JobRetry of an active job", err, broker.ErrWrongState)
	s.complete(f, nil)
	_, err = s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: a.ID})
	wantErr(s.t, "JobRetry of a completed job", err, broker.ErrWrongState)
	_, err = s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: "no-such-job"})
	wantErr(s.t, "JobRetry of an unknown job", err, broker.ErrNotFound)
}

// testCancelPending: cancelled pending and scheduled jobs are never
// fetched; finished jobs cannot be cancelled.
func testCancelPending(s *bundle) {
	q := "cancel"
	p := s.insert(q)
	sched := s.insert(q, withDelay(200*time.Millisecond))
	other := s.insert(q)
	for _, j := range []*broker.Job{p, sched} {
		c, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: j.ID})
		if err != nil || c.State != broker.StateCancelled || c.ID != j.ID {
			s.t.Fatalf("JobCancel(%s) = %+v, %v; want the job, cancelled", j.ID, c, err)
		}
		if g := s.wantState(q, j.ID, broker.StateCancelled); g.FinishedAt.IsZero() {
			s.t.Fatalf("cancelled job %s has no FinishedAt", j.ID)
		}
	}
	s.waitPast(sched.RunAt)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Promoted != 0 {
		s.t.Fatalf("QueueMaintain promoted %d jobs; the only scheduled one was cancelled", r.Promoted)
	}
	f := s.fetch(q, 10, longLease)
	wantIDs(s.t, "fetch after cancelling a pending and a scheduled job", ids(f), []string{other.ID})
	s.wantCounts(q, counts{broker.StateCancelled: 2, broker.StateActive: 1})

	_, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: p.ID})
	wantErr(s.t, "JobCancel of a cancelled job", err, broker.ErrWrongState)
	s.complete(f[0], nil)
	_, err = s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: other.ID})
	wantErr(s.t, "JobCancel of a completed job", err, broker.ErrWrongState)
	s.wantState(q, other.ID, broker.StateCompleted)
	_, err = s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: "no-such-job"})
	wantErr(s.t, "JobCancel of an unknown job", err, broker.ErrNotFound)

	// A cancelled job can be retried.
	if r, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: p.ID}); err != nil || r.State != broker.StatePending {
		s.t.Fatalf("JobRetry of a cancelled job = %+v, %v; want pending", r, err)
	}
	if j := s.fetchOne(q, longLease); j.ID != p.ID || j.Attempt != 1 {
		s.t.Fatalf("after JobRetry fetched %s attempt %d, want %s attempt 1", j.ID, j.Attempt, p.ID)
	}
}

// testCancelActive: cancelling an active job revokes its lease: the
// worker's calls get ErrLeaseLost, and lease expiry does not bring it back.
func testCancelActive(s *bundle) {
	q := "cancel-active"
	a := s.insert(q)
	f := s.fetchOne(q, shortLease)
	c, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: a.ID})
	if err != nil || c.State != broker.StateCancelled {
		s.t.Fatalf("JobCancel of an active job = %+v, %v; want cancelled", c, err)
	}
	s.rejectToken(lease(f), s.wantState(q, a.ID, broker.StateCancelled), "the token of a cancelled job")

	s.waitPast(f.LeaseUntil)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Recovered != 0 || r.Dead != 0 {
		s.t.Fatalf("QueueMaintain after the cancelled job's lease ran out: recovered %d, dead %d; want 0", r.Recovered, r.Dead)
	}
	s.wantState(q, a.ID, broker.StateCancelled)
	s.fetchNone(q, "the job was cancelled")
	s.wantCounts(q, counts{broker.StateCancelled: 1})
}

// testCompleteStoresResult: a completed job keeps its result and finish
// time; one JobComplete call may span queues.
func testCompleteStoresResult(s *bundle) {
	q := "complete"
	a := s.insert(q)
	f := s.fetchOne(q, longLease)
	result := json.RawMessage(`{"total":42.5,"currency":"EUR","lines":[1,2]}`)
	s.complete(f, result)
	j := s.wantState(q, a.ID, broker.StateCompleted)
	if !jsonEqual(j.Result, result) || j.FinishedAt.Before(f.StartedAt) || j.Attempt != 1 {
		s.t.Fatalf("completed job: Result %s, FinishedAt %v (started %v), Attempt %d; want %s, a finish time after the start, 1",
			j.Result, j.FinishedAt, f.StartedAt, j.Attempt, result)
	}
	s.wantCounts(q, counts{broker.StateCompleted: 1})

	// A batch across two queues, one without a result.
	b := s.insert(q)
	c := s.insert("complete-other")
	fb, fc := s.fetchOne(q, longLease), s.fetchOne("complete-other", longLease)
	errs, err := s.b.JobComplete(s.ctx, []*broker.JobCompleteParams{{JobLeaseParams: lease(fb)}, {JobLeaseParams: lease(fc), Result: json.RawMessage(`[1]`)}})
	if err != nil || len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		s.t.Fatalf("JobComplete across two queues = %v, %v; want [nil nil]", errs, err)
	}
	if j := s.wantState(q, b.ID, broker.StateCompleted); !jsonEqual(j.Result, nil) {
		s.t.Fatalf("job completed without a result has Result %s", j.Result)
	}
	if j := s.wantState("complete-other", c.ID, broker.StateCompleted); !jsonEqual(j.Result, json.RawMessage(`[1]`)) {
		s.t.Fatalf("job completed with result [1] has Result %s", j.Result)
	}
}

// testConcurrentFetchers: many fetchers at once receive every job exactly
// once.
func testConcurrentFetchers(s *bundle) {
	const n, workers = 3000, 16
	q := "concurrent"
	for range n / 1000 {
		if _, err := s.b.JobInsertMany(s.ctx, s.batch(q, 1000)); err != nil {
			s.t.Fatalf("JobInsertMany: %v", err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				jobs, err := s.fetchErr(q, 1+(w*7+i*13)%50, longLease)
				if err != nil {
					s.t.Errorf("worker %d: JobFetch: %v", w, err)
					return
				}
				if len(jobs) == 0 || s.t.Failed() {
					return
				}
				ps := make([]*broker.JobCompleteParams, len(jobs))
				for k, j := range jobs {
					ps[k] = &broker.JobCompleteParams{JobLeaseParams: lease(j)}
				}
				errs, err := s.b.JobComplete(s.ctx, ps)
				if err = errors.Join(append(errs, err)...); err != nil {
					s.t.Errorf("worker %d: JobComplete: %v", w, err)
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if s.t.Failed() {
		return
	}
	for id, c := range seen {
		if c != 1 {
			s.t.Errorf("job %s was fetched %d times", id, c)
		}
	}
	if len(seen) != n {
		s.t.Fatalf("%d distinct jobs fetched, want %d", len(seen), n)
	}
	s.wantCounts(q, counts{broker.StateCompleted: n})
}

// testTTLNeverExpiresActive: a TTL bounds how long a job may wait to start.
// Once it has started, neither housekeeping nor fetching expires it, however
// long it runs past its ExpiresAt: its worker keeps the lease and completes
// it.
func testTTLNeverExpiresActive(s *bundle) {
	var q string
	var j *broker.Job
	s.untilDecided("ttl-active", 300*time.Millisecond, "fetch a job just inserted before its TTL ran out", func(tq string, ttl time.Duration) bool {
		q = tq
		in := s.insert(q, withTTL(ttl))
		if jobs := s.fetch(q, 1, longLease); len(jobs) == 1 {
			j = jobs[0]
			return true
		}
		if s.now().Before(in.ExpiresAt) {
			s.t.Fatalf("fetch before the TTL ran out (at %v) returned no job", in.ExpiresAt)
		}
		return false // expired before the fetch: rightly not fetched
	})
	s.waitPast(s.get(q, j.ID).ExpiresAt)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Expired != 0 {
		s.t.Fatalf("QueueMaintain expired %d jobs; the only job is active", r.Expired)
	}
	s.fetchNone(q, "the only job is active")
	s.wantState(q, j.ID, broker.StateActive)
	if err := s.extendErr(lease(j), longLease); err != nil {
		s.t.Fatalf("JobLeaseExtend of an active job past its TTL: %v", err)
	}
	s.complete(j, json.RawMessage(`"done"`))
	s.wantState(q, j.ID, broker.StateCompleted)
	s.wantCounts(q, counts{broker.StateCompleted: 1})
}

// testUniqueKeyHeldWhileRetrying: a job waiting to retry is unfinished, so
// it keeps its unique key: housekeeping does not release it, and a
// duplicate, added alone or in a batch, is rejected naming the job, until
// the job finishes.
func testUniqueKeyHeldWhileRetrying(s *bundle) {
	const key = "invoice:INV-7"
	q := "unique-retry"
	first := s.insert(q, withKey(key), withAttempts(3))
	if st := s.fail(s.fetchOne(q, longLease), "bank timeout", time.Hour, false); st != broker.StateScheduled {
		s.t.Fatalf("JobFail with attempts left: state %q, want scheduled", st)
	}
	s.maintain(&broker.QueueMaintainParams{Queue: q})
	wantHeld := func(what string, err error) {
		s.t.Helper()
		var dup *broker.DuplicateError
		if !errors.As(err, &dup) || dup.ExistingID != first.ID || dup.UniqueKey != key {
			s.t.Fatalf("%s with the unique key of a job waiting to retry: %v; want a *DuplicateError naming %s and %q", what, err, first.ID, key)
		}
	}
	_, err := s.b.JobInsert(s.ctx, s.params(q, withKey(key)))
	wantHeld("JobInsert", err)
	_, err = s.b.JobInsertMany(s.ctx, []*broker.JobInsertParams{s.params(q), s.params(q, withKey(key))})
	wantHeld("JobInsertMany", err)
	s.wantCounts(q, counts{broker.StateScheduled: 1})
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: first.ID}); err != nil {
		s.t.Fatalf("JobCancel(%s): %v", first.ID, err)
	}
	s.insert(q, withKey(key)) // finished: the key is free
}
