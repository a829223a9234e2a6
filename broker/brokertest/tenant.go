package brokertest

import (
	"errors"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// withTenant sets the job's tenant.
func withTenant(t string) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.TenantID = t }
}

// testTenantScope: a call scoped to tenant A treats tenant B's job, and a
// job with no tenant, as absent, for every admin operation: ErrNotFound
// with the message an absent job gets, and nothing changes. Lists and
// stats scoped to A never show B's jobs. A's own jobs are served as usual.
func testTenantScope(s *bundle) {
	q := "tenant-scope"
	const a, b = "tenant-a", "tenant-b"
	bDead := s.insert(q, withTenant(b), withAttempts(1))
	s.fail(s.fetchOne(q, longLease), "boom", 0, false)
	bDone := s.insert(q, withTenant(b))
	s.complete(s.fetchOne(q, longLease), nil)
	s.insert(q, withTenant(b))
	bActive := s.fetchOne(q, longLease)
	bPending := s.insert(q, withTenant(b))
	bSched := s.insert(q, withTenant(b), withDelay(time.Hour))
	none := s.insert(q) // belongs to no tenant
	noneDead := s.insert(q, withAttempts(1))
	s.fail(s.fetchOne(q, longLease), "boom", 0, false)
	mine := s.insert(q, withTenant(a), withType("own.job"))

	others := []string{bDead.ID, bDone.ID, bActive.ID, bPending.ID, bSched.ID, none.ID, noneDead.ID}
	before := map[string]*broker.Job{}
	for _, id := range others {
		before[id] = s.get(q, id)
	}
	ops := []struct {
		name    string
		targets []string // jobs the operation could change if it ignored the scope
		call    func(id string) error
	}{
		{"JobGet", others, func(id string) error {
			_, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: q, ID: id, TenantID: a})
			return err
		}},
		{"JobCancel", []string{bActive.ID, bPending.ID, bSched.ID, none.ID}, func(id string) error {
			_, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: id, TenantID: a})
			return err
		}},
		{"JobRetry", []string{bDead.ID, noneDead.ID}, func(id string) error {
			_, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: id, TenantID: a})
			return err
		}},
		{"JobDelete", []string{bDead.ID, bDone.ID, bPending.ID, bSched.ID, none.ID, noneDead.ID}, func(id string) error {
			return s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: id, TenantID: a})
		}},
	}
	for _, op := range ops {
		absent := op.call("no-such-job")
		wantErr(s.t, op.name+" of an absent job, scoped", absent, broker.ErrNotFound)
		shape := strings.ReplaceAll(absent.Error(), "no-such-job", "<id>")
		for _, id := range op.targets {
			err := op.call(id)
			wantErr(s.t, op.name+" of another tenant's job "+id, err, broker.ErrNotFound)
			if got := strings.ReplaceAll(err.Error(), id, "<id>"); got != shape {
				s.t.Fatalf("%s of another tenant's job: error %q; an absent job gets %q: the message must not tell them apart", op.name, got, shape)
			}
		}
	}
	for _, id := range others {
		now := s.get(q, id)
		if now.State != before[id].State || now.Attempt != before[id].Attempt || !now.FinishedAt.Equal(before[id].FinishedAt) {
			s.t.Fatalf("job %s was %s (attempt %d) before tenant %s's scoped calls, now %s (attempt %d)",
				id, before[id].State, before[id].Attempt, a, now.State, now.Attempt)
		}
	}
	if err := s.extendErr(lease(bActive), longLease); err != nil {
		s.t.Fatalf("extending tenant %s's lease after another tenant's scoped cancel: %v; the lease must be intact", b, err)
	}

	for _, st := range broker.States {
		got := s.list(broker.JobListParams{Queue: q, State: st, TenantID: a})
		var want []string
		if st == broker.StatePending {
			want = []string{mine.ID}
		}
		wantIDs(s.t, "JobList "+string(st)+" scoped to "+a, got, want)
	}
	if st := s.tenantStats(q, a); st.Pending != 1 || st.Scheduled+st.Active+st.Completed+st.Dead+st.Cancelled+st.Expired != 0 {
		s.t.Fatalf("QueueStats scoped to %s = %+v; want its one pending job only", a, *st)
	}
	wantIDs(s.t, "JobList dead scoped to "+b, s.list(broker.JobListParams{Queue: q, State: broker.StateDead, TenantID: b}), []string{bDead.ID})

	// A's own job, through A's scope.
	if j, err := s.b.JobGet(s.ctx, &broker.JobGetParams{Queue: q, ID: mine.ID, TenantID: a}); err != nil || j.ID != mine.ID {
		s.t.Fatalf("JobGet of its own job, scoped: %v, %v", j, err)
	}
	if j, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: mine.ID, TenantID: a}); err != nil || j.State != broker.StateCancelled {
		s.t.Fatalf("JobCancel of its own job, scoped: %v, %v", j, err)
	}
	if j, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: mine.ID, TenantID: a}); err != nil || j.State != broker.StatePending {
		s.t.Fatalf("JobRetry of its own job, scoped: %v, %v", j, err)
	}
	if err := s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: mine.ID, TenantID: a}); err != nil {
		s.t.Fatalf("JobDelete of its own job, scoped: %v", err)
	}
	s.wantNotFound(q, mine.ID)
}

// withType sets the job's type.
func withType(t string) func(*broker.JobInsertParams) {
	return func(p *broker.JobInsertParams) { p.Type = t }
}

// tenantStats returns QueueStats scoped to tenant and fails the case on error.
func (s *bundle) tenantStats(queue, tenant string) *broker.QueueStats {
	s.t.Helper()
	st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: queue, TenantID: tenant})
	if err != nil {
		s.t.Fatalf("QueueStats(%s) scoped to %s: %v", queue, tenant, err)
	}
	return st
}

// tenants of the listing cases: two tenants and the jobs of none.
var listTenants = []string{"t-a", "t-b", ""}

// testTenantList: a tenant's listing of each state, paged with any page
// size, is exactly the queue's listing restricted to that tenant, in the
// same order; filtered by type too. Scoped stats count exactly the
// tenant's jobs in each state.
func testTenantList(s *bundle) {
	q := "tenant-list"
	const n = 9 // jobs per state, tenants in turn
	opts := func(i int, more ...func(*broker.JobInsertParams)) []func(*broker.JobInsertParams) {
		return append([]func(*broker.JobInsertParams){withTenant(listTenants[i%3]), withType([]string{"x", "y"}[i%2]), withPriority(i % 2)}, more...)
	}
	var expiring []*broker.Job
	for i := range n {
		expiring = append(expiring, s.insert(q, opts(i, withTTL(50*time.Millisecond))...))
	}
	s.waitPast(expiring[n-1].ExpiresAt)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Expired != n {
		s.t.Fatalf("QueueMaintain expired %d jobs, want %d", r.Expired, n)
	}
	for i := range n {
		s.insert(q, opts(i, withAttempts(1))...)
		s.fail(s.fetchOne(q, longLease), "boom", 0, false)
	}
	for i := range n {
		s.insert(q, opts(i)...)
		s.complete(s.fetchOne(q, longLease), nil)
	}
	for i := range n {
		s.insert(q, opts(i)...)
		s.fetchOne(q, time.Duration(60+i%4)*time.Second)
	}
	for i := range n {
		j := s.insert(q, opts(i)...)
		if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: j.ID}); err != nil {
			s.t.Fatalf("JobCancel: %v", err)
		}
	}
	for i := range n {
		s.insert(q, opts(i, withDelay(time.Duration(1+i%4)*time.Hour))...)
	}
	for i := range n {
		s.insert(q, opts(i)...)
	}
	s.checkTenantIndex(q)
}

// checkTenantIndex checks, for each state and tenant of listTenants, that
// the tenant's listing (paged in several sizes, and filtered by type) is
// the queue's listing restricted to the tenant, and that its scoped stats
// count it.
// testRecentCompletions: QueueStats.CompletedLastMinute counts the jobs
// completed just now, per tenant in scoped stats, and no job that failed
// or is still pending or active.
func testRecentCompletions(s *bundle) {
	q := "stats-recent"
	for _, tn := range []string{"t1", "t1", "t1", "t2", "", "t1", "t1"} {
		s.insert(q, withTenant(tn))
	}
	for range 2 {
		s.complete(s.fetchOne(q, longLease), nil) // t1
	}
	s.fail(s.fetchOne(q, longLease), "boom", 0, true) // t1, dead
	s.complete(s.fetchOne(q, longLease), nil)         // t2
	s.complete(s.fetchOne(q, longLease), nil)         // no tenant
	s.fetchOne(q, longLease)                          // t1, active; the last t1 stays pending
	for scope, want := range map[string]int64{"": 4, "t1": 2, "t2": 1, "t3": 0} {
		st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: q, TenantID: scope})
		if err != nil {
			s.t.Fatalf("QueueStats(%s, tenant %q): %v", q, scope, err)
		}
		if st.CompletedLastMinute != want {
			s.t.Fatalf("QueueStats(%s, tenant %q).CompletedLastMinute = %d; want %d (jobs completed just now, in scope; stats %+v)",
				q, scope, st.CompletedLastMinute, want, *st)
		}
	}
}

func (s *bundle) checkTenantIndex(q string) {
	s.t.Helper()
	for _, st := range broker.States {
		all, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: st, Limit: 1000})
		if err != nil {
			s.t.Fatalf("JobList(%s, %s): %v", q, st, err)
		}
		for _, tenant := range listTenants[:2] {
			var want, wantX []string
			for _, j := range all.Jobs {
				if j.TenantID == tenant {
					want = append(want, j.ID)
					if j.Type == "x" {
						wantX = append(wantX, j.ID)
					}
				}
			}
			for _, limit := range []int{1, 2, 5, 0} {
				got := s.list(broker.JobListParams{Queue: q, State: st, TenantID: tenant, Limit: limit})
				wantIDs(s.t, "JobList "+string(st)+" of tenant "+tenant, got, want)
			}
			gotX := s.list(broker.JobListParams{Queue: q, State: st, TenantID: tenant, Type: "x", Limit: 2})
			wantIDs(s.t, "JobList "+string(st)+" of tenant "+tenant+" and type x", gotX, wantX)
			if got := s.tenantStats(q, tenant).Count(st); got != int64(len(want)) {
				s.t.Fatalf("QueueStats(%s) scoped to %s: %d %s, want %d", q, tenant, got, st, len(want))
			}
		}
	}
}

// testTenantIndexExact: after a mixed workload that moves tenants' jobs
// through every transition (lease recovery, promotion, hand-back, retry
// delay, extension, cancel, retry, delete, expiry, retention), each
// tenant's listings and counts are still exactly its jobs in each state.
func testTenantIndexExact(s *bundle) {
	q := "tenant-exact"
	t := func(i int, more ...func(*broker.JobInsertParams)) []func(*broker.JobInsertParams) {
		return append([]func(*broker.JobInsertParams){withTenant(listTenants[i%3]), withType([]string{"x", "y"}[i%2])}, more...)
	}
	// Lease recovery: back to pending with attempts left, dead without.
	for i := range 6 {
		s.insert(q, t(i, withAttempts(1+i%2))...)
	}
	fetched := s.fetch(q, 6, shortLease)
	s.waitPast(fetched[len(fetched)-1].LeaseUntil)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Recovered+r.Dead != 6 {
		s.t.Fatalf("QueueMaintain recovered %d and killed %d of 6 expired leases", r.Recovered, r.Dead)
	}
	s.checkTenantIndex(q)

	// Promotion of due jobs, by fetch and by maintenance.
	var delayed []*broker.Job
	for i := range 6 {
		delayed = append(delayed, s.insert(q, t(i, withDelay(50*time.Millisecond))...))
	}
	s.waitPast(delayed[5].RunAt)
	s.maintain(&broker.QueueMaintainParams{Queue: q, Limit: 3})
	s.checkTenantIndex(q)

	// Fetch everything pending; hand some back, fail some with a retry
	// delay, extend one, complete the rest.
	var active []*broker.Job
	for {
		js := s.fetch(q, 5, longLease)
		if len(js) == 0 {
			break
		}
		active = append(active, js...)
	}
	for i, j := range active {
		switch i % 4 {
		case 0:
			if err := s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: j.ID, Token: j.LeaseToken}); err != nil {
				s.t.Fatalf("JobRelease(%s): %v", j.ID, err)
			}
		case 1:
			s.fail(j, "later", time.Hour, false)
		case 2:
			if err := s.extendErr(lease(j), 2*longLease); err != nil {
				s.t.Fatalf("JobLeaseExtend(%s): %v", j.ID, err)
			}
		default:
			s.complete(j, nil)
		}
	}
	s.checkTenantIndex(q)

	// Cancel, retry and delete, unscoped and scoped.
	pending, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: broker.StatePending})
	if err != nil {
		s.t.Fatalf("JobList pending: %v", err)
	}
	for i, j := range pending.Jobs {
		switch i % 3 {
		case 0:
			if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: j.ID, TenantID: j.TenantID}); err != nil {
				s.t.Fatalf("JobCancel(%s): %v", j.ID, err)
			}
		case 1:
			if err := s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: j.ID, TenantID: j.TenantID}); err != nil {
				s.t.Fatalf("JobDelete(%s): %v", j.ID, err)
			}
		}
	}
	for _, st := range []broker.State{broker.StateDead, broker.StateCancelled} {
		res, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: st})
		if err != nil {
			s.t.Fatalf("JobList %s: %v", st, err)
		}
		for i, j := range res.Jobs {
			if i%2 == 0 {
				if _, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: j.ID, TenantID: j.TenantID}); err != nil {
					s.t.Fatalf("JobRetry(%s): %v", j.ID, err)
				}
			}
		}
	}
	s.checkTenantIndex(q)

	// Expiry of pending jobs, and retention of completed and dead ones.
	var expiring []*broker.Job
	for i := range 6 {
		expiring = append(expiring, s.insert(q, t(i, withTTL(50*time.Millisecond))...))
	}
	s.waitPast(expiring[5].ExpiresAt)
	s.maintain(&broker.QueueMaintainParams{Queue: q})
	for i := range 6 {
		s.insert(q, t(i)...)
	}
	for {
		js := s.fetch(q, 10, longLease)
		if len(js) == 0 {
			break
		}
		for i, j := range js {
			if i%3 == 0 {
				s.fail(j, "dead", 0, true)
			} else {
				s.complete(j, nil)
			}
		}
	}
	s.checkTenantIndex(q)
	s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxCount: 2})
	s.checkTenantIndex(q)
	s.waitPast(s.now().Add(5 * time.Millisecond))
	s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxAge: time.Millisecond, DeadMaxAge: time.Millisecond})
	s.checkTenantIndex(q)
	for _, tenant := range listTenants[:2] {
		if st := s.tenantStats(q, tenant); st.Completed+st.Dead != 0 {
			s.t.Fatalf("QueueStats scoped to %s after retention removed every finished job: %+v", tenant, *st)
		}
	}
}

// testUniqueKeyPerTenant: a unique key is held per (queue, tenant, key).
// Jobs of different tenants never block each other (nor does a duplicate
// error name another tenant's job); jobs with no tenant are a namespace of
// their own; within a tenant the key is held as usual, through inserts,
// batches, completion, JobRetry and Commit's optional inserts.
func testUniqueKeyPerTenant(s *bundle) {
	q := "unique-tenant"
	const a, b, key = "tenant-a", "tenant-b", "invoice-42"
	heldA := s.insert(q, withTenant(a), withKey(key))
	heldB := s.insert(q, withTenant(b), withKey(key)) // A's key does not block B
	heldNone := s.insert(q, withKey(key))             // nor a job with no tenant
	s.rejectTenantDuplicate(q, a, key, heldA.ID)
	s.rejectTenantDuplicate(q, b, key, heldB.ID)
	s.rejectTenantDuplicate(q, "", key, heldNone.ID)
	// One batch may hold the same key for two tenants.
	batch := []*broker.JobInsertParams{s.params(q, withTenant(a), withKey("batch-key")), s.params(q, withTenant(b), withKey("batch-key"))}
	if _, err := s.b.JobInsertMany(s.ctx, batch); err != nil {
		s.t.Fatalf("JobInsertMany of one key for two tenants: %v; want both stored", err)
	}

	// Once A's job completes, A may use the key again; B's still holds.
	qc := q + "-done" // a queue of its own, so that the fetch takes A's job
	doneA := s.insert(qc, withTenant(a), withKey(key))
	doneB := s.insert(qc, withTenant(b), withKey(key), withDelay(time.Hour))
	f := s.fetchOne(qc, longLease)
	if f.ID != doneA.ID {
		s.t.Fatalf("fetched %s from %s, want %s", f.ID, qc, doneA.ID)
	}
	s.complete(f, nil)
	again := s.insert(qc, withTenant(a), withKey(key))
	s.rejectTenantDuplicate(qc, a, key, again.ID)
	s.rejectTenantDuplicate(qc, b, key, doneB.ID)

	// JobRetry takes the key back in the job's own tenant only: B's holder
	// does not stop A's retry, and after it A's key is held again.
	qr := q + "-retry"
	stopped := s.insert(qr, withTenant(a), withKey(key))
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: qr, ID: stopped.ID, TenantID: a}); err != nil {
		s.t.Fatalf("JobCancel(%s) scoped to %s: %v", stopped.ID, a, err)
	}
	otherB := s.insert(qr, withTenant(b), withKey(key))
	if j, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: qr, ID: stopped.ID, TenantID: a}); err != nil || j.State != broker.StatePending {
		s.t.Fatalf("JobRetry scoped to %s of its job whose key only %s's job %s holds: %v, %v; want it pending", a, b, otherB.ID, j, err)
	}
	s.rejectTenantDuplicate(qr, a, key, stopped.ID)
	s.rejectTenantDuplicate(qr, b, key, otherB.ID)
	// A's cancelled job whose key another of A's jobs took: the scoped retry
	// is refused and names A's own holder.
	stopped2 := s.insert(qr, withTenant(a), withKey("k2"))
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: qr, ID: stopped2.ID}); err != nil {
		s.t.Fatalf("JobCancel(%s): %v", stopped2.ID, err)
	}
	takerA := s.insert(qr, withTenant(a), withKey("k2"))
	_, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: qr, ID: stopped2.ID, TenantID: a})
	var dup *broker.DuplicateError
	if !errors.As(err, &dup) || dup.ExistingID != takerA.ID || dup.UniqueKey != "k2" {
		s.t.Fatalf("JobRetry scoped to %s of its job whose key its job %s took: %v; want a duplicate naming %s and key k2", a, takerA.ID, err, takerA.ID)
	}
	s.wantState(qr, stopped2.ID, broker.StateCancelled)

	// Commit's optional inserts: held only within the same tenant.
	c, ok := s.b.(broker.Committer)
	if !ok {
		return
	}
	qm := q + "-commit"
	holder := s.insert(qm, withTenant(a), withKey(key))
	res, err := c.Commit(s.ctx, &broker.CommitParams{Scope: qm, Insert: []*broker.CommitInsert{
		{Job: s.params(qm, withTenant(b), withKey(key)), Optional: true},
		{Job: s.params(qm, withTenant(a), withKey(key)), Optional: true},
		{Job: s.params(qm, withKey(key)), Optional: true},
	}})
	if err != nil {
		s.t.Fatalf("Commit of optional inserts with a key %s holds: %v", a, err)
	}
	if len(res.Jobs) != 3 || len(res.Skipped) != 3 || res.Jobs[0] == nil || res.Skipped[0] != nil ||
		res.Jobs[2] == nil || res.Skipped[2] != nil || res.Jobs[1] != nil ||
		!errors.As(res.Skipped[1], &dup) || dup.ExistingID != holder.ID || dup.UniqueKey != key {
		s.t.Fatalf("Commit result: jobs %v skipped %v; want %s's and the untenanted insert stored, %s's skipped naming %s",
			res.Jobs, res.Skipped, b, a, holder.ID)
	}
	if res.Jobs[0].UniqueKey != key || res.Jobs[0].TenantID != b {
		s.t.Fatalf("Commit stored %+v; want tenant %s and key %s", res.Jobs[0], b, key)
	}
	s.rejectTenantDuplicate(qm, b, key, res.Jobs[0].ID)
	s.rejectTenantDuplicate(qm, "", key, res.Jobs[2].ID)
}

// rejectTenantDuplicate inserts a job of tenant with key, alone and in a
// batch, and expects a *DuplicateError naming existing and the key as the
// user gave it, with nothing written; the job read back keeps its key.
func (s *bundle) rejectTenantDuplicate(q, tenant, key, existing string) {
	s.t.Helper()
	p := s.params(q, withTenant(tenant), withKey(key))
	_, err := s.b.JobInsert(s.ctx, p)
	var de *broker.DuplicateError
	if !errors.As(err, &de) || de.ExistingID != existing || de.UniqueKey != key {
		s.t.Fatalf("JobInsert of tenant %q with unique key %q held by %s: %v; want a *DuplicateError naming %s and %q", tenant, key, existing, err, existing, key)
	}
	_, err = s.b.JobInsertMany(s.ctx, []*broker.JobInsertParams{s.params(q, withTenant(tenant)), p})
	if !errors.As(err, &de) || de.ExistingID != existing || de.UniqueKey != key {
		s.t.Fatalf("JobInsertMany of tenant %q with unique key %q held by %s: %v; want a *DuplicateError naming %s and %q", tenant, key, existing, err, existing, key)
	}
	s.wantNotFound(q, p.ID)
	if j := s.get(q, existing); j.UniqueKey != key || j.TenantID != tenant {
		s.t.Fatalf("holder %s reads back with tenant %q and key %q; want %q and %q", existing, j.TenantID, j.UniqueKey, tenant, key)
	}
}
