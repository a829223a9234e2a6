package brokertest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/aibos/worker/broker"
)

// completeFetcher returns the broker as a broker.CompleteFetcher, or skips
// the case (saying why) for a broker without the capability.
func (s *bundle) completeFetcher() broker.CompleteFetcher {
	return capability[broker.CompleteFetcher](s, "broker.CompleteFetcher")
}

// completeFetch calls JobCompleteFetch, fails the case if the call is
// refused whole, and checks the fetched jobs as fetchErr does.
func (s *bundle) completeFetch(ps []*broker.JobCompleteParams, queue string, limit int, lease time.Duration) *broker.CompleteFetchResult {
	s.t.Helper()
	res, err := s.completeFetcher().JobCompleteFetch(s.ctx, ps, &broker.JobFetchParams{Queue: queue, Limit: limit, LeaseDuration: lease, WorkerID: workerID})
	if err != nil || res == nil {
		s.t.Fatalf("JobCompleteFetch(%d completions, fetch from %s) = %v, %v", len(ps), queue, res, err)
	}
	if res.CompleteErr == nil && len(res.Completed) != len(ps) {
		s.t.Fatalf("JobCompleteFetch of %d completions returned %d outcomes", len(ps), len(res.Completed))
	}
	if res.FetchErr != nil && len(res.Jobs) > 0 {
		s.t.Errorf("JobCompleteFetch fetched %d jobs together with error %v", len(res.Jobs), res.FetchErr)
	}
	if len(res.Jobs) > limit {
		s.t.Errorf("JobCompleteFetch(limit %d) fetched %d jobs", limit, len(res.Jobs))
	}
	for _, j := range res.Jobs {
		s.checkFetched(queue, lease, j)
	}
	return res
}

// completion returns the params completing j under its token with result.
func completion(j *broker.Job, result string) *broker.JobCompleteParams {
	p := &broker.JobCompleteParams{JobLeaseParams: lease(j)}
	if result != "" {
		p.Result = json.RawMessage(result)
	}
	return p
}

// testCompleteFetch: JobCompleteFetch keeps JobComplete's fencing per job
// and JobFetch's order. A completion under a stale token is refused with
// ErrLeaseLost and changes nothing, while the others of the call are
// written (results too, of another queue as well) and the fetch still
// leases jobs in priority order; a job completed in the call is never
// leased by its fetch; a job whose lease expired and was recovered is
// refused to its old holder and leased afresh by the same call, active
// under the new token, not completed.
func testCompleteFetch(s *bundle) {
	s.completeFetcher()
	q, other := "cf", "cf-other"
	a, b := s.insert(q, withPriority(2)), s.insert(q, withPriority(2))
	o := s.insert(other)
	held := s.fetch(q, 2, longLease)
	wantIDs(s.t, "first fetch", ids(held), []string{a.ID, b.ID})
	ho := s.fetchOne(other, longLease)
	urgent, later := s.insert(q, withPriority(1)), s.insert(q, withPriority(3))
	staleB := completion(held[1], "")
	staleB.Token-- // an older lease of b
	res := s.completeFetch([]*broker.JobCompleteParams{completion(held[0], `{"ok":1}`), staleB, completion(ho, `"other"`)}, q, 1, longLease)
	if res.CompleteErr != nil || res.Completed[0] != nil || res.Completed[2] != nil || !errors.Is(res.Completed[1], broker.ErrLeaseLost) {
		s.t.Fatalf("completions: %v, %v; want nil, ErrLeaseLost (stale token), nil", res.Completed, res.CompleteErr)
	}
	if res.FetchErr != nil {
		s.t.Fatalf("fetch half: %v", res.FetchErr)
	}
	wantIDs(s.t, "fetch half", ids(res.Jobs), []string{urgent.ID})
	if got := s.wantState(q, a.ID, broker.StateCompleted); string(got.Result) != `{"ok":1}` {
		s.t.Fatalf("job %s completed with result %s, want {\"ok\":1}", a.ID, got.Result)
	}
	if got := s.wantState(q, b.ID, broker.StateActive); got.LeaseToken != held[1].LeaseToken {
		s.t.Fatalf("job %s after a stale completion: token %d, want its live lease's %d", b.ID, got.LeaseToken, held[1].LeaseToken)
	}
	if got := s.wantState(other, o.ID, broker.StateCompleted); string(got.Result) != `"other"` {
		s.t.Fatalf("job %s of another queue completed with result %s, want \"other\"", o.ID, got.Result)
	}
	// b is completed under its live token and c fetched: a job completed
	// by the call is not what its fetch leases.
	res = s.completeFetch([]*broker.JobCompleteParams{completion(held[1], ""), completion(res.Jobs[0], "")}, q, 5, longLease)
	if res.CompleteErr != nil || res.Completed[0] != nil || res.Completed[1] != nil || res.FetchErr != nil {
		s.t.Fatalf("second call: completions %v, %v; fetch %v", res.Completed, res.CompleteErr, res.FetchErr)
	}
	wantIDs(s.t, "second fetch half", ids(res.Jobs), []string{later.ID})
	s.wantState(q, b.ID, broker.StateCompleted)
	s.wantState(q, urgent.ID, broker.StateCompleted)

	// A lease that expired and was recovered: its holder's completion is
	// refused and the same call leases the job again.
	r := s.insert(q)
	short := s.fetchOne(q, shortLease)
	if short.ID != r.ID {
		s.t.Fatalf("fetched %s, want %s", short.ID, r.ID)
	}
	s.recover(q, r.ID)
	res = s.completeFetch([]*broker.JobCompleteParams{completion(short, "")}, q, 5, longLease)
	if res.CompleteErr != nil || !errors.Is(res.Completed[0], broker.ErrLeaseLost) {
		s.t.Fatalf("completion of a recovered lease: %v, %v; want ErrLeaseLost", res.Completed, res.CompleteErr)
	}
	wantIDs(s.t, "fetch after recovery", ids(res.Jobs), []string{r.ID})
	if got := s.wantState(q, r.ID, broker.StateActive); got.LeaseToken != res.Jobs[0].LeaseToken || got.Attempt != 2 {
		s.t.Fatalf("recovered job %s: token %d attempt %d, want the new lease's %d, attempt 2", r.ID, got.LeaseToken, got.Attempt, res.Jobs[0].LeaseToken)
	}
}

// testCompleteFetchFreesCap: completions sent with a fetch take effect
// first, as if sent before it: a tenant at its cap whose job completes in
// the call has that slot for the fetch. The completions of a paused queue
// are written while its fetch half returns ErrQueuePaused; invalid
// completion params fail the completion half alone, and invalid fetch
// params the fetch half alone; nil fetch params refuse the call.
func testCompleteFetchFreesCap(s *bundle) {
	s.completeFetcher()
	q := "cf-cap"
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true, MaxActive: 1})
	s.insertTenantJobs(q, "t-a", 3, false)
	a := s.fetchOne(q, longLease)
	s.fetchNone(q, "t-a is at its cap of 1")
	for n := range 2 {
		res := s.completeFetch([]*broker.JobCompleteParams{completion(a, "")}, q, 5, longLease)
		if res.CompleteErr != nil || res.Completed[0] != nil || res.FetchErr != nil {
			s.t.Fatalf("call %d: completion %v, %v; fetch %v", n, res.Completed, res.CompleteErr, res.FetchErr)
		}
		if len(res.Jobs) != 1 || res.Jobs[0].TenantID != "t-a" {
			s.t.Fatalf("call %d: fetched %v; want t-a's next job, in the slot its completion freed", n, ids(res.Jobs))
		}
		s.wantState(q, a.ID, broker.StateCompleted)
		a = res.Jobs[0]
	}

	if err := s.b.QueuePause(s.ctx, q); err != nil {
		s.t.Fatalf("QueuePause: %v", err)
	}
	res := s.completeFetch([]*broker.JobCompleteParams{completion(a, "")}, q, 5, longLease)
	if res.CompleteErr != nil || res.Completed[0] != nil || !errors.Is(res.FetchErr, broker.ErrQueuePaused) {
		s.t.Fatalf("paused queue: completion %v, %v; fetch %v; want nil and ErrQueuePaused", res.Completed, res.CompleteErr, res.FetchErr)
	}
	s.wantState(q, a.ID, broker.StateCompleted)
	if err := s.b.QueueResume(s.ctx, q); err != nil {
		s.t.Fatalf("QueueResume: %v", err)
	}

	plain := "cf-bad"
	j := s.insert(plain)
	s.insert(plain)
	held := s.fetchOne(plain, longLease)
	bad := completion(held, "")
	bad.Result = json.RawMessage(`{not json`)
	res = s.completeFetch([]*broker.JobCompleteParams{bad}, plain, 1, longLease)
	if !errors.Is(res.CompleteErr, broker.ErrInvalidJob) || res.FetchErr != nil || len(res.Jobs) != 1 {
		s.t.Fatalf("invalid result: completion half %v; fetch %d jobs, %v; want ErrInvalidJob and a job fetched", res.CompleteErr, len(res.Jobs), res.FetchErr)
	}
	s.wantState(plain, j.ID, broker.StateActive)
	cf := s.completeFetcher()
	for _, f := range []*broker.JobFetchParams{{Queue: plain, Limit: 0, LeaseDuration: longLease}, {Queue: "", Limit: 1, LeaseDuration: longLease}} {
		res, err := cf.JobCompleteFetch(s.ctx, []*broker.JobCompleteParams{completion(held, "")}, f)
		if err != nil || !errors.Is(res.FetchErr, broker.ErrInvalidJob) || res.CompleteErr != nil {
			s.t.Fatalf("fetch params %+v: %v, %+v; want the fetch half to fail with ErrInvalidJob", f, err, res)
		}
		if f.Limit == 0 && res.Completed[0] != nil {
			s.t.Fatalf("completion beside an invalid fetch: %v, want it written", res.Completed[0])
		}
	}
	s.wantState(plain, j.ID, broker.StateCompleted)
	if _, err := cf.JobCompleteFetch(s.ctx, nil, nil); !errors.Is(err, broker.ErrInvalidJob) {
		s.t.Fatalf("nil fetch params: %v, want ErrInvalidJob", err)
	}
}
