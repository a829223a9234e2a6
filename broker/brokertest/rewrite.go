package brokertest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

// The cases of broker.JobRewriter, which key rotation re-seals stored jobs
// with while workers run. They skip brokers without it.
func init() {
	cases = append(cases,
		testCase{"JobRewriteCompareAndSet", testJobRewriteCAS},
		testCase{"JobRewriteKeepsLease", testJobRewriteKeepsLease},
	)
}

// rewriter returns the case's broker as a JobRewriter or skips.
func (s *bundle) rewriter() broker.JobRewriter {
	s.t.Helper()
	r, ok := s.b.(broker.JobRewriter)
	if !ok {
		s.t.Skipf("%T does not implement broker.JobRewriter", s.b)
	}
	return r
}

func rw(old, new string) *broker.ValueRewrite { return &broker.ValueRewrite{Old: old, New: new} }

// testJobRewriteCAS: a rewrite replaces data, last error and the attempt
// history's errors when each still holds what was read, and nothing else;
// one stale value (the job failed again since) refuses the whole rewrite;
// a missing job is ErrNotFound and bad params are refused.
func testJobRewriteCAS(s *bundle) {
	r := s.rewriter()
	q := "rewrite.cas"
	j := s.insert(q, func(p *broker.JobInsertParams) { p.Data = json.RawMessage(`"sealed-d1"`) })
	f := s.fetchOne(q, longLease)
	s.fail(f, "sealed-e1", time.Hour, false)
	read := s.wantState(q, j.ID, broker.StateScheduled)

	err := r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID,
		Data: rw(`"sealed-d1"`, `"sealed-d2"`), LastError: rw("sealed-e1", "sealed-e2"),
		Attempts: map[int]*broker.ValueRewrite{0: rw("sealed-e1", "sealed-e2")}})
	if err != nil {
		s.t.Fatalf("JobRewrite of values as read: %v", err)
	}
	got := s.wantState(q, j.ID, broker.StateScheduled)
	if string(got.Data) != `"sealed-d2"` || got.LastError != "sealed-e2" || len(got.Attempts) != 1 || got.Attempts[0].Error != "sealed-e2" {
		s.t.Fatalf("after the rewrite: data %s, last error %q, attempts %+v; want the new values", got.Data, got.LastError, got.Attempts)
	}
	if got.Attempt != read.Attempt || !got.RunAt.Equal(read.RunAt) || got.Attempts[0].Outcome != read.Attempts[0].Outcome {
		s.t.Fatalf("the rewrite changed more than the values: before %+v, after %+v", read, got)
	}

	// The job runs and fails again between a read and a rewrite: the
	// rewrite, built on the old read, must not put the old error back.
	s.rescheduleNow(q, j.ID)
	f = s.fetchWait(q, longLease)
	s.fail(f, "sealed-e3", time.Hour, false)
	err = r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID,
		Data: rw(`"sealed-d2"`, `"sealed-d4"`), LastError: rw("sealed-e2", "sealed-e4")})
	if !errors.Is(err, broker.ErrConflict) {
		s.t.Fatalf("JobRewrite with a stale last error: %v; want ErrConflict", err)
	}
	got = s.get(q, j.ID)
	if string(got.Data) != `"sealed-d2"` || got.LastError != "sealed-e3" || len(got.Attempts) != 2 {
		s.t.Fatalf("after a refused rewrite: data %s, last error %q, %d attempts; want nothing changed (d2, e3, 2)", got.Data, got.LastError, len(got.Attempts))
	}
	err = r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID, Attempts: map[int]*broker.ValueRewrite{5: rw("x", "y")}})
	if !errors.Is(err, broker.ErrConflict) {
		s.t.Fatalf("JobRewrite of an attempt the history lacks: %v; want ErrConflict", err)
	}

	err = r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: "no-such-job", Data: rw(`"a"`, `"b"`)})
	if !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("JobRewrite of a missing job: %v; want ErrNotFound", err)
	}
	for name, p := range map[string]*broker.JobRewriteParams{
		"nil":             nil,
		"nothing":         {Queue: q, ID: j.ID},
		"bad queue":       {Queue: "a{b}", ID: j.ID, Data: rw(`"a"`, `"b"`)},
		"data not json":   {Queue: q, ID: j.ID, Data: rw(`"a"`, `{`)},
		"error too long":  {Queue: q, ID: j.ID, LastError: rw("a", string(make([]byte, broker.MaxAttemptErrorBytes+1)))},
		"attempt nil":     {Queue: q, ID: j.ID, Attempts: map[int]*broker.ValueRewrite{0: nil}},
		"attempt outside": {Queue: q, ID: j.ID, Attempts: map[int]*broker.ValueRewrite{-1: rw("a", "b")}},
	} {
		if err := r.JobRewrite(s.ctx, p); !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Errorf("JobRewrite(%s): %v; want ErrInvalidJob", name, err)
		}
	}
}

// rescheduleNow makes a scheduled job due now, through Commit's
// Reschedule when the broker has it, else by waiting for maintenance.
func (s *bundle) rescheduleNow(q, id string) {
	s.t.Helper()
	c, ok := s.b.(broker.Committer)
	if !ok {
		s.t.Skipf("%T does not implement broker.Committer, needed to make a retry due", s.b)
	}
	_, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Reschedule: []*broker.JobReschedule{{ID: id, RunAt: s.now()}}})
	if err != nil {
		s.t.Fatalf("reschedule %s now: %v", id, err)
	}
}

// testJobRewriteKeepsLease: an active job's data rewritten between its
// fetch and its completion stays leased to its worker, whose completion
// then succeeds; progress reported between a read and a rewrite is not
// overwritten, nor is the result of a job completed meanwhile.
func testJobRewriteKeepsLease(s *bundle) {
	r := s.rewriter()
	q := "rewrite.lease"
	j := s.insert(q, func(p *broker.JobInsertParams) { p.Data = json.RawMessage(`"sealed-d1"`) })
	f := s.fetchOne(q, longLease)
	if err := s.b.JobProgress(s.ctx, &broker.JobLeaseParams{Queue: q, ID: f.ID, Token: f.LeaseToken}, json.RawMessage(`"sealed-p1"`)); err != nil {
		s.t.Fatal(err)
	}
	if err := r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID, Data: rw(`"sealed-d1"`, `"sealed-d2"`)}); err != nil {
		s.t.Fatalf("JobRewrite of an active job's data: %v", err)
	}
	if got := s.wantState(q, j.ID, broker.StateActive); got.LeaseToken != f.LeaseToken || string(got.Data) != `"sealed-d2"` {
		s.t.Fatalf("active job after a rewrite: token %d (want %d), data %s", got.LeaseToken, f.LeaseToken, got.Data)
	}
	// The worker reports progress after the rotator read p1.
	if err := s.b.JobProgress(s.ctx, &broker.JobLeaseParams{Queue: q, ID: f.ID, Token: f.LeaseToken}, json.RawMessage(`"sealed-p2"`)); err != nil {
		s.t.Fatal(err)
	}
	if err := r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID, Progress: rw(`"sealed-p1"`, `"sealed-p3"`)}); !errors.Is(err, broker.ErrConflict) {
		s.t.Fatalf("JobRewrite of progress reported since: %v; want ErrConflict", err)
	}
	s.complete(f, json.RawMessage(`"sealed-r1"`))
	// A rewrite built on a result other than the stored one (read from an
	// earlier state of the job) is refused: the stored result stays.
	if err := r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID, Result: rw(`"sealed-r0"`, `"sealed-r9"`)}); !errors.Is(err, broker.ErrConflict) {
		s.t.Fatalf("JobRewrite of a result that changed: %v; want ErrConflict", err)
	}
	got := s.wantState(q, j.ID, broker.StateCompleted)
	if string(got.Result) != `"sealed-r1"` || string(got.Progress) != `"sealed-p2"` || string(got.Data) != `"sealed-d2"` {
		s.t.Fatalf("completed job: result %s, progress %s, data %s; want r1, p2, d2", got.Result, got.Progress, got.Data)
	}
	if err := r.JobRewrite(s.ctx, &broker.JobRewriteParams{Queue: q, ID: j.ID, Result: rw(`"sealed-r1"`, `"sealed-r2"`), Progress: rw(`"sealed-p2"`, `"sealed-p3"`)}); err != nil {
		s.t.Fatalf("JobRewrite of a completed job's result and progress: %v", err)
	}
	if got := s.wantState(q, j.ID, broker.StateCompleted); string(got.Result) != `"sealed-r2"` || string(got.Progress) != `"sealed-p3"` {
		s.t.Fatalf("completed job after a rewrite: result %s, progress %s; want r2, p3", got.Result, got.Progress)
	}
}
