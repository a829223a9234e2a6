package brokertest

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// fairBroker returns the broker as a broker.FairBroker, or skips the case
// (saying why) for a broker without fair scheduling.
func (s *bundle) fairBroker() broker.FairBroker {
	fb, ok := s.b.(broker.FairBroker)
	if !ok {
		s.t.Skipf("%T does not implement broker.FairBroker", s.b)
	}
	return fb
}

// setFair stores a queue's tenant policy and fails the case on error.
func (s *bundle) setFair(p *broker.FairPolicy) {
	s.t.Helper()
	if err := s.fairBroker().QueueFairSet(s.ctx, p); err != nil {
		s.t.Fatalf("QueueFairSet(%q): %v", p.Queue, err)
	}
}

// insertTenantJobs inserts n jobs of tenant tn, in one JobInsertMany when
// many is true (the bulk path), else one by one.
func (s *bundle) insertTenantJobs(queue, tn string, n int, many bool) {
	s.t.Helper()
	if !many {
		for range n {
			s.insert(queue, withTenant(tn))
		}
		return
	}
	ps := make([]*broker.JobInsertParams, n)
	for i := range ps {
		ps[i] = s.params(queue, withTenant(tn))
	}
	if _, err := s.b.JobInsertMany(s.ctx, ps); err != nil {
		s.t.Fatalf("JobInsertMany of %d jobs of tenant %s: %v", n, tn, err)
	}
}

// testFairOrder: in a fair queue, backlogged tenants of one priority are
// served in turn by weight (1:1:2 here, checked on every prefix of the
// fetch order, whatever the insert order), in turns of at most
// broker.FairQuantum jobs; a tenant arriving late is served within a
// round, not behind the backlog; the stored policy reads back; and a queue
// without fairness stays FIFO. The tolerances scale with the turn the
// broker is seen to use (t-a's longest run of jobs): a broker that serves
// one job per turn is held to within 2 jobs.
func testFairOrder(s *bundle) {
	fb := s.fairBroker()
	q := "fair"
	policy := &broker.FairPolicy{Queue: q, Fair: true,
		Tenants: map[string]broker.TenantShare{"t-a": {Weight: 1}, "t-b": {}, "t-c": {Weight: 2}}}
	s.setFair(policy)
	got, err := fb.QueueFairGet(s.ctx, q)
	if err != nil || !got.Fair || got.WeightOf("t-c") != 2 || got.WeightOf("t-b") != 1 || got.MaxActive != 0 {
		s.t.Fatalf("QueueFairGet(%q) = %+v, %v; want the policy stored: fair, t-c weight 2, t-b weight 1", q, got, err)
	}
	const k = broker.FairQuantum
	// Each tenant's whole backlog is inserted before the next tenant's.
	s.insertTenantJobs(q, "t-a", 12*k, true)
	s.insertTenantJobs(q, "t-b", 12*k, false)
	s.insertTenantJobs(q, "t-c", 24*k, true)
	weights := map[string]int{"t-a": 1, "t-b": 1, "t-c": 2}
	var order []string
	for len(order) < 16*k {
		for _, j := range s.fetch(q, 3, longLease) {
			order = append(order, j.TenantID)
		}
	}
	turn := 1 // t-a's longest run: the broker's turn
	for i, run := 1, 1; i < len(order); i++ {
		if run = run*boolInt(order[i] == order[i-1]) + 1; order[i] == "t-a" {
			turn = max(turn, run)
		}
	}
	if turn > k {
		s.t.Fatalf("tenant t-a (weight 1) had %d jobs in a row, want at most broker.FairQuantum (%d); order %v", turn, k, order)
	}
	// A tenant arriving now waits for at most one round of the others, and
	// gets its share from then on, no more: it banked no turns while it had
	// no job (weights 1+1+2+1: 1 to 2 turns of the next 5).
	s.insertTenantJobs(q, "t-d", 4*k, true)
	var next []string
	late := 0
	for range 5 * turn {
		j := s.fetchOne(q, longLease)
		next = append(next, j.TenantID)
		order = append(order, j.TenantID)
		if j.TenantID == "t-d" {
			late++
		}
	}
	if late < 1 || late > 2*turn {
		s.t.Errorf("tenant t-d, arriving with %d jobs behind a backlog of 3 tenants, had %d of the next %d jobs (tenants %v), want 1 to %d (turns of %d)",
			4*k, late, 5*turn, next, 2*turn, turn)
	}
	for len(order) < 52*k {
		for _, j := range s.fetch(q, 4, longLease) {
			order = append(order, j.TenantID)
		}
	}
	s.fetchNone(q, "every job was fetched")
	// Every prefix while all three are backlogged (t-d's jobs left out)
	// holds each tenant's share, within 2 turns.
	count := map[string]int{}
	n := 0
	for i, tn := range order {
		if tn == "t-d" {
			continue
		}
		count[tn]++
		n++
		if n > 36*k {
			break
		}
		for tn, w := range weights {
			want := float64(n) * float64(w) / 4
			if d := float64(count[tn]) - want; d > float64(2*turn) || d < -float64(2*turn) {
				s.t.Fatalf("after %d jobs, tenant %s (weight %d of 4) had %d, want %.1f ± %d (tenants served in turn by weight 1:1:2, turns of %d); order %v",
					n, tn, w, count[tn], want, 2*turn, turn, order[:i+1])
			}
		}
	}

	// Without fairness, jobs of one priority stay FIFO whatever tenant.
	q = "fair-off"
	s.setFair(&broker.FairPolicy{Queue: q, Tenants: map[string]broker.TenantShare{"t-c": {Weight: 5}}})
	var inserted []string
	for _, tn := range []string{"t-a", "t-a", "t-a", "t-b", "t-c", "t-a", "t-c"} {
		inserted = append(inserted, s.insert(q, withTenant(tn)).ID)
	}
	wantIDs(s.t, "fetch order with fairness off (FIFO, tenants ignored)", ids(s.fetch(q, 10, longLease)), inserted)
}

// testFairPriorityFirst: fairness orders jobs within a priority only: a
// tenant's less urgent job never overtakes another tenant's more urgent
// one, however many turns the second tenant has had, in one batch or one
// by one.
func testFairPriorityFirst(s *bundle) {
	q := "fair-prio"
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true, Tenants: map[string]broker.TenantShare{"t-a": {Weight: 1000}}})
	// t-b has had many turns at priority 1; t-a arrives with priority 4.
	for range 6 {
		s.insert(q, withTenant("t-b"), withPriority(1))
	}
	for range 3 {
		s.insert(q, withTenant("t-a"), withPriority(4))
	}
	for range 2 {
		s.insert(q, withTenant("t-c"), withPriority(2))
	}
	s.insert(q, withPriority(1)) // no tenant
	jobs := s.fetch(q, 100, longLease)
	for i := 1; i < len(jobs); i++ {
		if jobs[i].Priority < jobs[i-1].Priority {
			s.t.Fatalf("fetched batch: job %s of tenant %q (priority %d) came after job %s of tenant %q (priority %d): fairness crossed priorities",
				jobs[i].ID, jobs[i].TenantID, jobs[i].Priority, jobs[i-1].ID, jobs[i-1].TenantID, jobs[i-1].Priority)
		}
	}
	if len(jobs) != 12 {
		s.t.Fatalf("fetched %d jobs, want 12", len(jobs))
	}
	s.insert(q, withTenant("t-a"), withPriority(4))
	urgent := s.insert(q, withTenant("t-b"), withPriority(1))
	if j := s.fetchOne(q, longLease); j.ID != urgent.ID {
		s.t.Fatalf("fetched job %s (tenant %q, priority %d), want t-b's priority-1 job %s first", j.ID, j.TenantID, j.Priority, urgent.ID)
	}
}

// testTenantCapConcurrent: 8 fetchers at once never take a tenant past its
// cap (the policy's default cap, or its own), caps apply with fairness off,
// capped tenants' jobs wait while later jobs are fetched, and jobs with no
// tenant are never capped.
func testTenantCapConcurrent(s *bundle) {
	q := "cap"
	caps := map[string]int{"t-big": 3, "t-small": 2}
	s.setFair(&broker.FairPolicy{Queue: q, MaxActive: 2, Tenants: map[string]broker.TenantShare{"t-big": {MaxActive: 3}}})
	s.insertTenantJobs(q, "t-big", 30, true)
	s.insertTenantJobs(q, "t-small", 10, false)
	for range 4 {
		s.insert(q)
	}
	var (
		mu     sync.Mutex
		active = map[string]int{}
		wg     sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := s.fetchErr(q, 2, longLease)
				if err != nil {
					s.t.Errorf("JobFetch: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					active[j.TenantID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for tn, c := range caps {
		if active[tn] != c {
			s.t.Errorf("8 concurrent fetchers leased %d jobs of tenant %s, want its cap %d", active[tn], tn, c)
		}
	}
	if active[""] != 4 {
		s.t.Errorf("leased %d jobs with no tenant, want all 4 (they are never capped)", active[""])
	}
	st := s.stats(q)
	if want := int64(3 + 2 + 4); st.Active != want || st.Pending != 44-9 {
		s.t.Errorf("stats: %d active, %d pending; want %d active and %d pending (capped jobs wait)", st.Active, st.Pending, want, 44-9)
	}
}

// testTenantCapReleased: a tenant's slot is freed by whatever ends a lease:
// completion, failure, hand-back, cancel, and lease-expiry recovery (a
// killed worker's slots come back when its leases expire).
func testTenantCapReleased(s *bundle) {
	q := "cap-free"
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true, MaxActive: 1})
	s.insertTenantJobs(q, "t-a", 8, true)
	s.insertTenantJobs(q, "t-b", 2, false)
	held := s.fetch(q, 10, longLease)
	if len(held) != 2 || held[0].TenantID == held[1].TenantID {
		s.t.Fatalf("first fetch leased %v of tenants %v; want one job of each tenant (cap 1)", ids(held), tenantsOf(held))
	}
	a := held[0]
	if a.TenantID != "t-a" {
		a = held[1]
	}
	atCap := func(why string) {
		s.t.Helper()
		s.fetchNone(q, "t-a is at its cap of 1 ("+why+") and t-b's second job waits for t-b's slot")
	}
	// after fetches t-a's next job once how freed its slot, and checks it
	// is t-a's: t-b's second job stays capped.
	after := func(how string) *broker.Job {
		s.t.Helper()
		j := s.waitJob(q, how)
		if j.TenantID != "t-a" {
			s.t.Fatalf("after %s fetched job %s of tenant %q, want t-a's", how, j.ID, j.TenantID)
		}
		return j
	}
	atCap("first lease")
	s.complete(a, nil)
	a = after("completion")
	atCap("after completion")
	if st := s.fail(a, "boom", 0, true); st != broker.StateDead {
		s.t.Fatalf("discarded failure: state %s, want dead", st)
	}
	a = after("a failure")
	atCap("after failure")
	if err := s.b.JobRelease(s.ctx, &broker.JobLeaseParams{Queue: q, ID: a.ID, Token: a.LeaseToken}); err != nil {
		s.t.Fatalf("JobRelease: %v", err)
	}
	a = after("a hand-back")
	atCap("after hand-back")
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: a.ID}); err != nil {
		s.t.Fatalf("JobCancel: %v", err)
	}
	// The next lease is short: the worker holding it is gone.
	var short *broker.Job
	s.waitFor("t-a's slot freed by cancelling its active job", func() bool {
		jobs, err := s.fetchErr(q, 1, shortLease)
		if err != nil || len(jobs) == 0 {
			return false
		}
		short = jobs[0]
		return true
	})
	if short.TenantID != "t-a" {
		s.t.Fatalf("after a cancel fetched job %s of tenant %q, want t-a's", short.ID, short.TenantID)
	}
	atCap("a live lease holds its slot")
	s.waitFor("the expired lease recovered", func() bool {
		r := s.maintain(&broker.QueueMaintainParams{Queue: q})
		return r.Recovered+r.Dead > 0
	})
	after("lease-expiry recovery")
	atCap("after recovery")
}

// waitJob polls JobFetch (long leases) until it returns a job; how names
// what should have freed the slot.
func (s *bundle) waitJob(q, how string) *broker.Job {
	s.t.Helper()
	var got *broker.Job
	s.waitFor(fmt.Sprintf("a slot freed by %s", how), func() bool {
		jobs, err := s.fetchErr(q, 1, longLease)
		if err != nil && !errors.Is(err, broker.ErrQueuePaused) {
			s.t.Fatalf("JobFetch: %v", err)
		}
		if len(jobs) == 0 {
			return false
		}
		got = jobs[0]
		return true
	})
	return got
}

func tenantsOf(jobs []*broker.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.TenantID
	}
	return out
}

// testRateLimit: per-tenant and per-type rate limits hold on broker time
// (every span of StartedAt of length k periods, k = 1..10, holds at most
// (k+1)·Limit starts of one limit: the GCRA bound, burst included); jobs
// over a limit wait pending at their place, and keep starting at the
// limit's pace; jobs no limit names are not held back. The case runs for
// 10 periods of 500 ms.
func testRateLimit(s *bundle) {
	const q, limited = "rate", "brokertest.limited"
	rate := broker.Rate{Limit: 5, Period: 500 * time.Millisecond}
	typeRate := broker.Rate{Limit: 4, Period: 500 * time.Millisecond}
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true, TenantRate: rate,
		Tenants:   map[string]broker.TenantShare{"t-b": {Weight: 2}},
		TypeRates: map[string]broker.Rate{limited: typeRate}})
	got, err := s.fairBroker().QueueFairGet(s.ctx, q)
	if err != nil || got.RateOf("t-a") != rate || got.RateOf("t-b") != rate || got.TypeRates[limited] != typeRate || got.RateOf("") != (broker.Rate{}) {
		s.t.Fatalf("QueueFairGet(%q) = %+v, %v; want tenant rate %+v and type %s rate %+v", q, got, err, rate, limited, typeRate)
	}
	// The limits and their state are in the stats: unused, each lets its
	// whole burst start.
	wantRates := []broker.RateStat{{Type: limited, Rate: typeRate, Available: typeRate.Limit}, {Tenant: "t-a", Rate: rate, Available: rate.Limit}}
	if got := s.statsOf(q, "t-a").Rates; !reflect.DeepEqual(got, wantRates) {
		s.t.Errorf("QueueStats of tenant t-a: rates %+v, want %+v", got, wantRates)
	}
	if got := s.stats(q).Rates; !reflect.DeepEqual(got, wantRates[:1]) {
		s.t.Errorf("QueueStats: rates %+v, want the job type's %+v", got, wantRates[:1])
	}
	s.insertTenantJobs(q, "t-a", 40, true)
	s.insertTenantJobs(q, "t-b", 40, false)
	for range 40 {
		s.insert(q, func(p *broker.JobInsertParams) { p.Type = limited })
	}
	for range 3 {
		s.insert(q)
	}
	starts := map[string][]time.Time{} // per limit: tenant, or the type
	var first time.Time
	for deadline := time.Now().Add(10 * rate.Period); time.Now().Before(deadline); {
		jobs, err := s.fetchErr(q, 20, longLease)
		if err != nil {
			s.t.Fatalf("JobFetch: %v", err)
		}
		for _, j := range jobs {
			key := j.TenantID
			if j.Type == limited {
				key = "type " + limited
			}
			starts[key] = append(starts[key], j.StartedAt)
			if first.IsZero() || j.StartedAt.Before(first) {
				first = j.StartedAt
			}
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatal(s.ctx.Err())
		case <-time.After(pollEvery):
		}
	}
	if n := len(starts[""]); n != 3 {
		s.t.Errorf("%d of the 3 jobs no limit names started, want all", n)
	}
	for key, r := range map[string]broker.Rate{"t-a": rate, "t-b": rate, "type " + limited: typeRate} {
		st := starts[key]
		sort.Slice(st, func(i, k int) bool { return st[i].Before(st[k]) })
		for i := range st {
			for k := 1; k <= 10; k++ {
				end := st[i].Add(time.Duration(k) * r.Period)
				n := sort.Search(len(st), func(x int) bool { return !st[x].Before(end) }) - i
				if bound := (k + 1) * r.Limit; n > bound {
					s.t.Fatalf("%s (limit %d per %v): %d jobs started within %v from %v (broker time), want at most %d",
						key, r.Limit, r.Period, n, time.Duration(k)*r.Period, st[i].Sub(first), bound)
				}
			}
		}
		// Over 10 periods a limit lets about 10 bursts' worth start: the
		// jobs over it waited and then ran, they were not dropped.
		if len(st) < 3*r.Limit {
			s.t.Errorf("%s (limit %d per %v): only %d jobs started in 10 periods, want at least %d: the limit starved it",
				key, r.Limit, r.Period, len(st), 3*r.Limit)
		}
	}
	// The jobs held back are pending, not failed and not leased.
	for _, tn := range []string{"t-a", "t-b"} {
		st := s.statsOf(q, tn)
		if len(st.Rates) != 2 || st.Rates[1].Tenant != tn || st.Rates[1].Available < 0 || st.Rates[1].Available > rate.Limit {
			s.t.Errorf("tenant %s: rates %+v, want its own and the type's, each with 0..Limit available", tn, st.Rates)
		}
		if n := int64(len(starts[tn])); st.Active != n || st.Pending != 40-n || st.Dead+st.Scheduled != 0 {
			s.t.Errorf("tenant %s: %d started; stats %d active, %d pending, %d dead, %d scheduled; want %d active and the rest pending",
				tn, n, st.Active, st.Pending, st.Dead, st.Scheduled, n)
		}
	}
}

// statsOf returns a tenant's QueueStats and fails the case on error.
func (s *bundle) statsOf(queue, tenant string) *broker.QueueStats {
	s.t.Helper()
	st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: queue, TenantID: tenant})
	if err != nil {
		s.t.Fatalf("QueueStats(%q, tenant %q): %v", queue, tenant, err)
	}
	return st
}

// testTenantPause: pausing one tenant of a queue holds its jobs pending,
// at their place, while the other tenants' jobs and jobs with no tenant are
// fetched; inserts still succeed; scoped stats say so; a policy change
// keeps the pause; resuming lets its jobs be fetched, in their order; both
// are idempotent; bad arguments are refused.
func testTenantPause(s *bundle) {
	fb := s.fairBroker()
	q := "tenant-pause"
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true})
	for range 2 {
		if err := fb.QueueTenantPause(s.ctx, q, "t-a", true); err != nil {
			s.t.Fatalf("QueueTenantPause(t-a, true): %v", err)
		}
	}
	s.setFair(&broker.FairPolicy{Queue: q, Fair: true, MaxActive: 10})
	var held []string
	for range 3 {
		held = append(held, s.insert(q, withTenant("t-a")).ID)
	}
	s.insertTenantJobs(q, "t-b", 2, false)
	s.insert(q)
	got := s.fetch(q, 10, longLease)
	for _, j := range got {
		if j.TenantID == "t-a" {
			s.t.Fatalf("fetched job %s of paused tenant t-a", j.ID)
		}
	}
	if len(got) != 3 {
		s.t.Fatalf("fetched %d jobs, want t-b's 2 and the one with no tenant", len(got))
	}
	if st := s.statsOf(q, "t-a"); !st.TenantPaused || st.Pending != 3 || st.Paused {
		s.t.Fatalf("stats of t-a: tenant paused %v, %d pending, queue paused %v; want paused, 3 pending, queue not paused", st.TenantPaused, st.Pending, st.Paused)
	}
	if st := s.statsOf(q, "t-b"); st.TenantPaused {
		s.t.Fatal("stats of t-b say it is paused")
	}
	for range 2 {
		if err := fb.QueueTenantPause(s.ctx, q, "t-a", false); err != nil {
			s.t.Fatalf("QueueTenantPause(t-a, false): %v", err)
		}
	}
	wantIDs(s.t, "t-a's jobs after resuming", ids(s.fetch(q, 10, longLease)), held)
	for _, bad := range [][2]string{{"bad queue", "t-a"}, {q, ""}, {q, "t\x01a"}} {
		if err := fb.QueueTenantPause(s.ctx, bad[0], bad[1], true); !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Errorf("QueueTenantPause(%q, %q) = %v, want ErrInvalidJob", bad[0], bad[1], err)
		}
	}
	testPolicyOnPlainQueue(s)
}

// testPolicyOnPlainQueue: a queue with no policy at all, already fetched
// from, obeys a tenant's pause and then a cap set afterwards at the very
// next fetch (a broker may skip policy reads on plain queues, but never
// serve a fetch from a stale view of the policy).
func testPolicyOnPlainQueue(s *bundle) {
	fb := s.fairBroker()
	q := "tenant-pause-plain"
	first := s.insert(q, withTenant("t-a"))
	wantIDs(s.t, "the plain queue's first fetch", ids(s.fetch(q, 10, longLease)), []string{first.ID})
	if err := fb.QueueTenantPause(s.ctx, q, "t-a", true); err != nil {
		s.t.Fatalf("QueueTenantPause(t-a, true): %v", err)
	}
	held := []string{s.insert(q, withTenant("t-a")).ID, s.insert(q, withTenant("t-a")).ID}
	other := s.insert(q, withTenant("t-b"))
	wantIDs(s.t, "fetched from the plain queue with t-a paused", ids(s.fetch(q, 10, longLease)), []string{other.ID})
	s.setFair(&broker.FairPolicy{Queue: q, MaxActive: 2})
	if err := fb.QueueTenantPause(s.ctx, q, "t-a", false); err != nil {
		s.t.Fatalf("QueueTenantPause(t-a, false): %v", err)
	}
	// t-a has one job active (the first fetch's): its cap of 2 lets one more start.
	if got := s.fetch(q, 10, longLease); len(got) != 1 || got[0].ID != held[0] {
		s.t.Fatalf("fetched %v once t-a was resumed under a cap of 2 with one job active; want only %s", ids(got), held[0])
	}
}

// boolInt is 1 for true, else 0.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
