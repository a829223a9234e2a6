package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
)

// Durations the cases share. They are short so that the suite runs in a few
// seconds, and waits are generous so that a loaded machine does not fail it.
const (
	shortLease  = 300 * time.Millisecond // a lease the suite lets expire
	longLease   = 30 * time.Second       // a lease that never expires during a case
	waitTimeout = 5 * time.Second        // how long to wait for the broker to do something due
	pollEvery   = 20 * time.Millisecond  // how often waits poll the broker
	// undecidedTries bounds the tries of a case that retries, with more
	// time, when a loaded machine was too slow for it to decide.
	undecidedTries = 4
	// timeSlack absorbs brokers that store times at millisecond precision.
	timeSlack = 2 * time.Millisecond
	workerID  = "brokertest-worker"
	clockQ    = "brokertest.clock" // the queue the suite's broker-clock probe uses
)

// testCase is one conformance case.
type testCase struct {
	name string
	run  func(s *bundle)
}

// cases lists every case in the order they are started. Names are stable:
// every broker's test output shows the same ones.
var cases = []testCase{
	{"PriorityOrder", testPriorityOrder},
	{"FIFOAmongEquals", testFIFOAmongEquals},
	{"DelayedInvisibleBeforeDue", testDelayedInvisibleBeforeDue},
	{"LeaseExpiryRecovered", testLeaseExpiryRecovered},
	{"StaleTokenRejected", testStaleTokenRejected},
	{"LeaseExtend", testLeaseExtend},
	{"BulkAtomic", testBulkAtomic},
	{"DuplicateUniqueKey", testDuplicateUniqueKey},
	{"QueueFull", testQueueFull},
	{"TTLExpiry", testTTLExpiry},
	{"RetryUntilDead", testRetryUntilDead},
	{"PauseResume", testPauseResume},
	{"CancelPending", testCancelPending},
	{"CancelActive", testCancelActive},
	{"ConcurrentFetchersNoDuplicates", testConcurrentFetchers},
	{"InsertRoundTrip", testInsertRoundTrip},
	{"CompleteStoresResult", testCompleteStoresResult},
	{"ReleaseReturnsToPending", testReleaseReturnsToPending},
	{"RecoveredKeepPlace", testRecoveredKeepPlace},
	{"Progress", testProgress},
	{"JobGetDelete", testJobGetDelete},
	{"JobList", testJobList},
	{"JobListCursor", testJobListCursor},
	{"QueueStats", testQueueStats},
	{"QueueList", testQueueList},
	{"QueuesPending", testQueuesPending},
	{"RetentionRemovesCompleted", testRetention},
	{"RetentionOnlyCompleted", testRetentionOnlyCompleted},
	{"RetentionKeepsPace", testRetentionKeepsPace},
	{"MaintainReportsIdle", testMaintainReportsIdle},
	{"DeleteOnComplete", testDeleteOnComplete},
	{"TTLNeverExpiresActive", testTTLNeverExpiresActive},
	{"UniqueKeyHeldWhileRetrying", testUniqueKeyHeldWhileRetrying},
	{"InvalidInput", testInvalidInput},
	{"ClosedBroker", testClosedBroker},
	{"FailMaxAttemptsOverride", testFailMaxAttemptsOverride},
	{"FailMergesHeaders", testFailMergesHeaders},
	{"OldestPending", testOldestPending},
	{"ScheduleClaimOnce", testScheduleClaimOnce},
	{"ScheduleClaimRefusals", testScheduleClaimRefusals},
	{"ScheduleUniqueOverlap", testScheduleUniqueOverlap},
	{"ScheduleCRUD", testScheduleCRUD},
	{"JobReschedule", testJobReschedule},
	{"ConcurrentInserts", testConcurrentInserts},
	{"LeaderLease", testLeaderLease},
	{"TenantScope", testTenantScope},
	{"TenantList", testTenantList},
	{"RecentCompletions", testRecentCompletions},
	{"TenantIndexExact", testTenantIndexExact},
	{"UniqueKeyPerTenant", testUniqueKeyPerTenant},
	{"AttemptHistory", testAttemptHistory},
	{"QuarantineAfterCrashes", testQuarantineAfterCrashes},
	{"FairOrder", testFairOrder},
	{"FairPriorityFirst", testFairPriorityFirst},
	{"TenantCapConcurrent", testTenantCapConcurrent},
	{"TenantCapReleased", testTenantCapReleased},
	{"RateLimit", testRateLimit},
	{"TenantPause", testTenantPause},
}

// Run runs every conformance case against brokers made by newBroker. Each
// call of newBroker must return a fresh, isolated, empty broker: the suite
// calls it once per subtest, with that subtest's t. Cases run in parallel
// with t.Parallel().
//
// Each case is a subtest named after the rule it checks (PriorityOrder,
// LeaseExpiryRecovered, ...), so every broker shows the same names.
//
// Because the cases are parallel subtests, Run returns before they have
// run: release what newBroker set up with t.Cleanup on the t it is given
// (or on the parent test), never with a defer in the calling test. The
// suite closes no broker except the one ClosedBroker asks for; closing it
// again in a cleanup may return ErrClosed.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(&bundle{t: t, ctx: t.Context(), b: newBroker(t), newBroker: newBroker, tokens: map[string]int64{}})
		})
	}
}

// bundle is what a case works with: its broker and the helpers around it.
type bundle struct {
	t         *testing.T
	ctx       context.Context
	b         broker.Broker
	newBroker func(t *testing.T) broker.Broker

	mu     sync.Mutex
	seq    int
	tokens map[string]int64 // highest lease token seen per job id
}

// id returns a job id unique within the case.
func (s *bundle) id(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s-%04d", prefix, s.seq)
}

// params returns valid insert params with the suite's defaults, changed
// by opts.
func (s *bundle) params(queue string, opts ...func(*broker.JobInsertParams)) *broker.JobInsertParams {
	p := &broker.JobInsertParams{
		ID:          s.id(queue),
		Queue:       queue,
		Type:        "brokertest.job",
		Data:        json.RawMessage(`{"n":1}`),
		MaxAttempts: 3,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// insert inserts a job with the suite's defaults, changed by opts.
func (s *bundle) insert(queue string, opts ...func(*broker.JobInsertParams)) *broker.Job {
	s.t.Helper()
	return s.insertP(s.params(queue, opts...))
}

// insertP inserts p and checks what JobInsert returns.
func (s *bundle) insertP(p *broker.JobInsertParams) *broker.Job {
	s.t.Helper()
	j, err := s.b.JobInsert(s.ctx, p)
	if err != nil {
		s.t.Fatalf("JobInsert(id %s, queue %s): %v", p.ID, p.Queue, err)
	}
	if j == nil {
		s.t.Fatalf("JobInsert(id %s) returned a nil job and no error", p.ID)
	}
	if j.ID != p.ID || j.Queue != p.Queue {
		s.t.Fatalf("JobInsert returned job %s in queue %q, want %s in %q", j.ID, j.Queue, p.ID, p.Queue)
	}
	if j.CreatedAt.IsZero() || j.RunAt.IsZero() {
		s.t.Fatalf("JobInsert(id %s) returned CreatedAt %v, RunAt %v: both must be set", p.ID, j.CreatedAt, j.RunAt)
	}
	return j
}

// withPriority, withDelay, ... are insert options.
func withPriority(n int) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.Priority = n }
}

func withDelay(d time.Duration) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.Delay = d }
}

func withAttempts(n int) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.MaxAttempts = n }
}

func withKey(k string) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.UniqueKey = k }
}

func withTTL(d time.Duration) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.TTL = d }
}

func withID(id string) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.ID = id }
}

// fetchErr calls JobFetch and checks what every broker must guarantee of a
// fetched job: active, in the queue, Attempt within MaxAttempts, never
// started before it was due, LeaseUntil = start + lease, the worker recorded,
// and a lease token greater than any earlier one of that job. Violations
// are reported with t.Errorf, so it is safe from any goroutine.
func (s *bundle) fetchErr(queue string, limit int, lease time.Duration) ([]*broker.Job, error) {
	jobs, err := s.b.JobFetch(s.ctx, &broker.JobFetchParams{Queue: queue, Limit: limit, LeaseDuration: lease, WorkerID: workerID})
	if err != nil {
		if len(jobs) > 0 {
			s.t.Errorf("JobFetch(%s) returned %d jobs together with error %v", queue, len(jobs), err)
		}
		return nil, err
	}
	if len(jobs) > limit {
		s.t.Errorf("JobFetch(%s, limit %d) returned %d jobs", queue, limit, len(jobs))
	}
	seen := map[string]bool{}
	for _, j := range jobs {
		s.checkFetched(queue, lease, j)
		if seen[j.ID] {
			s.t.Errorf("JobFetch(%s) returned job %s twice in one batch", queue, j.ID)
		}
		seen[j.ID] = true
	}
	return jobs, nil
}

func (s *bundle) checkFetched(queue string, lease time.Duration, j *broker.Job) {
	if j == nil {
		s.t.Errorf("JobFetch(%s) returned a nil job", queue)
		return
	}
	if j.State != broker.StateActive || j.Queue != queue {
		s.t.Errorf("fetched job %s: state %q in queue %q, want active in %q", j.ID, j.State, j.Queue, queue)
	}
	if j.Attempt < 1 || j.Attempt > j.MaxAttempts {
		s.t.Errorf("fetched job %s: Attempt %d, want 1..MaxAttempts (%d)", j.ID, j.Attempt, j.MaxAttempts)
	}
	if j.StartedAt.Before(j.RunAt) {
		s.t.Errorf("fetched job %s started at %v, before it was due at %v (broker clock)", j.ID, j.StartedAt, j.RunAt)
	}
	if d := j.LeaseUntil.Sub(j.StartedAt); d < lease-timeSlack || d > lease+timeSlack {
		s.t.Errorf("fetched job %s: LeaseUntil - StartedAt = %v, want the lease duration %v", j.ID, d, lease)
	}
	if j.WorkerID != workerID {
		s.t.Errorf("fetched job %s: WorkerID %q, want %q", j.ID, j.WorkerID, workerID)
	}
	s.mu.Lock()
	prev, ok := s.tokens[j.ID]
	if j.LeaseToken > prev {
		s.tokens[j.ID] = j.LeaseToken
	}
	s.mu.Unlock()
	if j.LeaseToken <= 0 || (ok && j.LeaseToken <= prev) {
		s.t.Errorf("fetched job %s: lease token %d, want > 0 and greater than its earlier token %d", j.ID, j.LeaseToken, prev)
	}
}

// fetch is fetchErr that stops the case on error.
func (s *bundle) fetch(queue string, limit int, lease time.Duration) []*broker.Job {
	s.t.Helper()
	jobs, err := s.fetchErr(queue, limit, lease)
	if err != nil {
		s.t.Fatalf("JobFetch(%s, limit %d): %v", queue, limit, err)
	}
	return jobs
}

// fetchOne fetches exactly one job and fails the case if there is none.
func (s *bundle) fetchOne(queue string, lease time.Duration) *broker.Job {
	s.t.Helper()
	jobs := s.fetch(queue, 1, lease)
	if len(jobs) != 1 {
		s.t.Fatalf("JobFetch(%s, limit 1) returned %d jobs, want 1", queue, len(jobs))
	}
	return jobs[0]
}

// fetchNone fails the case if a fetch returns a job.
func (s *bundle) fetchNone(queue string, why string) {
	s.t.Helper()
	if jobs := s.fetch(queue, 10, longLease); len(jobs) > 0 {
		s.t.Fatalf("JobFetch(%s) returned %s, want nothing: %s", queue, ids(jobs), why)
	}
}

// fetchWait polls JobFetch until it returns a job.
func (s *bundle) fetchWait(queue string, lease time.Duration) *broker.Job {
	s.t.Helper()
	var got *broker.Job
	s.waitFor("a job to be fetchable from "+queue, func() bool {
		if jobs := s.fetch(queue, 1, lease); len(jobs) == 1 {
			got = jobs[0]
		}
		return got != nil
	})
	return got
}

// get returns a job and fails the case if JobGet errs.
func (s *bundle) get(queue, id string) *broker.Job {
	s.t.Helper()
	j, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: queue, ID: id})
	if err != nil {
		s.t.Fatalf("JobGet(%s, %s): %v", queue, id, err)
	}
	if j == nil || j.ID != id {
		s.t.Fatalf("JobGet(%s, %s) returned %+v", queue, id, j)
	}
	return j
}

// wantState fails the case unless the job is in state st.
func (s *bundle) wantState(queue, id string, st broker.State) *broker.Job {
	s.t.Helper()
	j := s.get(queue, id)
	if j.State != st {
		s.t.Fatalf("job %s is %q, want %q (last error %q)", id, j.State, st, j.LastError)
	}
	return j
}

// wantNotFound fails the case unless JobGet returns ErrNotFound.
func (s *bundle) wantNotFound(queue, id string) {
	s.t.Helper()
	j, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: queue, ID: id})
	if err == nil && j != nil {
		s.t.Fatalf("JobGet(%s, %s) found the job (%s); want ErrNotFound", queue, id, j.State)
	}
	if !errors.Is(err, broker.ErrNotFound) {
		s.t.Fatalf("JobGet(%s, %s): %v; want ErrNotFound", queue, id, err)
	}
}

// stats returns QueueStats and fails the case on error.
func (s *bundle) stats(queue string) *broker.QueueStats {
	s.t.Helper()
	st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: queue})
	if err != nil {
		s.t.Fatalf("QueueStats(%s): %v", queue, err)
	}
	return st
}

// counts is the expected count per state; states not named must be zero.
type counts map[broker.State]int64

// wantCounts checks every state count of the queue.
func (s *bundle) wantCounts(queue string, want counts) {
	s.t.Helper()
	st := s.stats(queue)
	for _, state := range broker.States {
		if got := st.Count(state); got != want[state] {
			s.t.Fatalf("QueueStats(%s): %d %s, want %d (stats %+v)", queue, got, state, want[state], *st)
		}
	}
}

// complete completes one job under its token and fails the case on error.
func (s *bundle) complete(j *broker.Job, result json.RawMessage) {
	s.t.Helper()
	errs, err := s.b.JobComplete(s.ctx, []*broker.JobCompleteParams{{JobLeaseParams: lease(j), Result: result}})
	if err != nil || len(errs) != 1 || errs[0] != nil {
		s.t.Fatalf("JobComplete(%s, token %d) = %v, %v; want one nil error", j.ID, j.LeaseToken, errs, err)
	}
}

// completeErr completes one job and returns its per-job error.
func (s *bundle) completeErr(lp broker.JobLeaseParams) error {
	s.t.Helper()
	errs, err := s.b.JobComplete(s.ctx, []*broker.JobCompleteParams{{JobLeaseParams: lp, Result: json.RawMessage(`"done"`)}})
	if err != nil {
		s.t.Fatalf("JobComplete(%s): the whole call failed: %v", lp.ID, err)
	}
	if len(errs) != 1 {
		s.t.Fatalf("JobComplete of one job returned %d errors", len(errs))
	}
	return errs[0]
}

// extendErr extends one lease and returns its per-job error.
func (s *bundle) extendErr(lp broker.JobLeaseParams, d time.Duration) error {
	s.t.Helper()
	errs, err := s.b.JobLeaseExtend(s.ctx, []*broker.JobLeaseParams{&lp}, d)
	if err != nil {
		s.t.Fatalf("JobLeaseExtend(%s): the whole call failed: %v", lp.ID, err)
	}
	if len(errs) != 1 {
		s.t.Fatalf("JobLeaseExtend of one lease returned %d errors", len(errs))
	}
	return errs[0]
}

// fail records a failed attempt and returns the new state.
func (s *bundle) fail(j *broker.Job, msg string, retryDelay time.Duration, discard bool) broker.State {
	s.t.Helper()
	st, err := s.b.JobFail(s.ctx, &broker.JobFailParams{JobLeaseParams: lease(j), Error: msg, RetryDelay: retryDelay, Discard: discard})
	if err != nil {
		s.t.Fatalf("JobFail(%s, token %d): %v", j.ID, j.LeaseToken, err)
	}
	return st
}

// maintain runs QueueMaintain and fails the case on error.
func (s *bundle) maintain(p *broker.QueueMaintainParams) *broker.QueueMaintainResult {
	s.t.Helper()
	r, err := s.b.QueueMaintain(s.ctx, p)
	if err != nil {
		s.t.Fatalf("QueueMaintain(%s): %v", p.Queue, err)
	}
	return r
}

// now reads the broker's clock: the CreatedAt of a probe job, which it then
// deletes. The suite judges broker time only through the broker's own view.
func (s *bundle) now() time.Time {
	s.t.Helper()
	j := s.insert(clockQ)
	if err := s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: clockQ, ID: j.ID}); err != nil {
		s.t.Fatalf("JobDelete of clock probe %s: %v", j.ID, err)
	}
	return j.CreatedAt
}

// untilDecided calls try with a new queue (prefix-0, prefix-1, ...) and a
// span that starts at d and doubles with each call, until try reports
// that it could decide: a loaded machine may take longer than the span to
// do what a case needs done within it, and the case then tries again with
// more time rather than skip its assertion. It fails the case after
// undecidedTries calls, saying what the machine was too slow to do.
func (s *bundle) untilDecided(prefix string, d time.Duration, what string, try func(q string, d time.Duration) bool) {
	s.t.Helper()
	for n := range undecidedTries {
		if try(fmt.Sprintf("%s-%d", prefix, n), d<<n) {
			return
		}
	}
	s.t.Fatalf("the machine was too slow to %s within %v, %d times: cannot decide", what, d<<(undecidedTries-1), undecidedTries)
}

// waitPast waits until the broker's clock is past instant.
func (s *bundle) waitPast(instant time.Time) {
	s.t.Helper()
	s.waitFor("the broker clock to pass "+instant.String(), func() bool { return s.now().After(instant) })
}

// waitFor polls cond every pollEvery until it holds, and fails the case
// after waitTimeout. The caller's clock only bounds the wait.
func (s *bundle) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if s.t.Failed() {
			s.t.FailNow()
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("context done waiting for %s: %v", what, s.ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// lease returns the lease params of a fetched job.
func lease(j *broker.Job) broker.JobLeaseParams {
	return broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}
}

// wantErr fails the case unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// ids lists the ids of jobs, for comparisons and messages.
func ids(jobs []*broker.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// wantIDs fails the case unless got lists exactly the ids in want, in order.
func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// jsonEqual reports whether two JSON documents are equal; empty means null.
func jsonEqual(a, b json.RawMessage) bool {
	var va, vb any
	if len(a) > 0 && json.Unmarshal(a, &va) != nil {
		return false
	}
	if len(b) > 0 && json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// near reports whether a and b are within timeSlack of each other.
func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d >= -timeSlack && d <= timeSlack
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
