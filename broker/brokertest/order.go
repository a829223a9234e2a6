package brokertest

import (
	"sort"
	"time"

	"github.com/aibos/worker/broker"
)

// testPriorityOrder: priority 1 is the most urgent: lower numbers are
// fetched first over the whole range, both one job per fetch and within one
// batch, and a job inserted with priority 0 has DefaultPriority, in line
// with the jobs that ask for it.
func testPriorityOrder(s *bundle) {
	prios := []int{0, broker.MinPriority, 5, broker.MaxPriority, 4, broker.MaxPriority - 1, 2,
		broker.MinPriority + 1, 999, 500, 501, 42, 43, 100, 101}

	// One job per fetch, distinct priorities, inserted in a scrambled order.
	q := "prio"
	var inserted []*broker.Job
	for _, p := range prios {
		inserted = append(inserted, s.insert(q, withPriority(p)))
	}
	if p := inserted[0].Priority; p != broker.DefaultPriority {
		s.t.Fatalf("JobInsert with priority 0 returned priority %d, want the default %d", p, broker.DefaultPriority)
	}
	if p := s.get(q, inserted[0].ID).Priority; p != broker.DefaultPriority {
		s.t.Fatalf("job inserted with priority 0 is stored with priority %d, want the default %d", p, broker.DefaultPriority)
	}
	want := byPriority(inserted)
	var got []string
	for range prios {
		got = append(got, s.fetchOne(q, longLease).ID)
	}
	wantIDs(s.t, "fetch order, one job per fetch (priority 1 first)", got, want)
	s.fetchNone(q, "every job was fetched")

	// One batch, with equal priorities at both ends of the range: the batch
	// itself must be in priority order, FIFO among equals.
	q = "prio-batch"
	inserted = nil
	for _, p := range []int{broker.MinPriority, broker.MaxPriority, 0, broker.MinPriority, 7, broker.MaxPriority,
		broker.DefaultPriority, broker.MinPriority + 1, broker.MaxPriority - 1, 0, broker.MaxPriority, broker.MinPriority} {
		inserted = append(inserted, s.insert(q, withPriority(p)))
	}
	got = ids(s.fetch(q, 100, longLease))
	wantIDs(s.t, "order within one fetched batch (priority 1 first, FIFO among equals)", got, byPriority(inserted))

	// Jobs inserted together in one JobInsertMany take their places too.
	q = "prio-many"
	var batch []*broker.JobInsertParams
	for _, p := range []int{4, 0, broker.MaxPriority, 1, 4, broker.MinPriority, 0, 2} {
		batch = append(batch, s.params(q, withPriority(p)))
	}
	inserted, err := s.b.JobInsertMany(s.ctx, batch)
	if err != nil {
		s.t.Fatalf("JobInsertMany of %d jobs: %v", len(batch), err)
	}
	got = ids(s.fetch(q, 100, longLease))
	wantIDs(s.t, "order of jobs inserted in one batch (priority 1 first, FIFO among equals)", got, byPriority(inserted))
}

// byPriority returns the ids of jobs (in insert order) in the order a broker
// must fetch them: priority ascending (1 first), insert order among equals.
func byPriority(jobs []*broker.Job) []string {
	sorted := append([]*broker.Job(nil), jobs...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Priority < sorted[b].Priority })
	return ids(sorted)
}

// testFIFOAmongEquals: equal priorities come out in insert order, alone and
// interleaved with other priorities, whatever the fetch batch size.
func testFIFOAmongEquals(s *bundle) {
	q := "fifo"
	var inserted []*broker.Job
	for range 50 {
		inserted = append(inserted, s.insert(q, withPriority(7)))
	}
	got := fetchAll(s, q, []int{1, 7, 3, 13, 1, 50})
	wantIDs(s.t, "fetch order of 50 jobs of equal priority (insert order)", got, ids(inserted))

	q = "fifo-mixed"
	inserted = nil
	for i := range 30 {
		inserted = append(inserted, s.insert(q, withPriority([]int{3, 1, 9}[i%3])))
	}
	got = fetchAll(s, q, []int{4, 1, 9})
	wantIDs(s.t, "fetch order of interleaved priorities (lower numbers first, insert order among equals)", got, byPriority(inserted))
}

// fetchAll fetches a queue empty with the given batch sizes in turn and
// returns the ids in fetch order.
func fetchAll(s *bundle, q string, limits []int) []string {
	s.t.Helper()
	var got []string
	for i := 0; ; i++ {
		jobs := s.fetch(q, limits[i%len(limits)], longLease)
		if len(jobs) == 0 {
			return got
		}
		got = append(got, ids(jobs)...)
	}
}

// testDelayedInvisibleBeforeDue: a delayed job is scheduled, not fetched
// before it is due (by the broker's clock), and fetched once due.
func testDelayedInvisibleBeforeDue(s *bundle) {
	var q string
	var d, r *broker.Job
	s.untilDecided("delayed", 1500*time.Millisecond, "insert jobs and fetch before they were due", func(tq string, delay time.Duration) bool {
		q = tq
		d = s.insert(q, withDelay(delay))
		if d.State != broker.StateScheduled {
			s.t.Fatalf("job inserted with Delay %v is %q, want scheduled", delay, d.State)
		}
		if !near(d.RunAt, d.CreatedAt.Add(delay)) {
			s.t.Fatalf("job inserted with Delay %v: RunAt %v, want CreatedAt %v + delay", delay, d.RunAt, d.CreatedAt)
		}
		runAt := s.now().Add(delay * 2 / 3) // an instant in the broker's future, whatever the skew
		r = s.insert(q, func(p *broker.JobInsertParams) { p.RunAt = runAt })
		if r.State != broker.StateScheduled || !near(r.RunAt, runAt) {
			s.t.Fatalf("job inserted with RunAt %v: state %q, RunAt %v; want scheduled at RunAt", runAt, r.State, r.RunAt)
		}
		s.wantCounts(q, counts{broker.StateScheduled: 2})

		// Before they are due, neither fetch nor maintenance may make
		// them ready.
		early := s.fetch(q, 10, longLease)
		res := s.maintain(&broker.QueueMaintainParams{Queue: q})
		now := s.now()
		if !now.Before(r.RunAt) || !now.Before(d.RunAt) {
			return false // due by now: fetched early or not, it cannot tell
		}
		if len(early) > 0 || res.Promoted != 0 {
			s.t.Fatalf("before due (broker now %v): fetch returned %v, maintain promoted %d; want nothing", now, ids(early), res.Promoted)
		}
		s.wantState(q, d.ID, broker.StateScheduled)
		s.wantState(q, r.ID, broker.StateScheduled)
		return true
	})

	// Once due they are fetched; fetchWait checks StartedAt >= RunAt.
	got := map[string]bool{}
	for range 2 {
		got[s.fetchWait(q, longLease).ID] = true
	}
	if !got[d.ID] || !got[r.ID] {
		s.t.Fatalf("fetched %v once due, want %s and %s", got, d.ID, r.ID)
	}

	// A RunAt in the past is simply due: pending at once.
	past := s.insert(q, func(p *broker.JobInsertParams) { p.RunAt = time.Now().Add(-time.Hour) })
	if past.State != broker.StatePending {
		s.t.Fatalf("job with RunAt an hour ago is %q, want pending", past.State)
	}
	if j := s.fetchOne(q, longLease); j.ID != past.ID {
		s.t.Fatalf("fetched %s, want the job with a past RunAt %s", j.ID, past.ID)
	}

	testDuePromotion(s)
}

// testDuePromotion: a due job is promoted by QueueMaintain, and JobFetch
// promotes due jobs before choosing, so a due high-priority job goes ahead
// of a pending low-priority one.
func testDuePromotion(s *bundle) {
	q := "delayed-promote"
	m := s.insert(q, withDelay(200*time.Millisecond))
	s.waitPast(m.RunAt)
	if res := s.maintain(&broker.QueueMaintainParams{Queue: q}); res.Promoted != 1 {
		s.t.Fatalf("QueueMaintain after the job was due: promoted %d, want 1", res.Promoted)
	}
	s.wantState(q, m.ID, broker.StatePending)
	if j := s.fetchOne(q, longLease); j.ID != m.ID {
		s.t.Fatalf("fetched %s, want promoted job %s", j.ID, m.ID)
	}

	q = "delayed-priority"
	low := s.insert(q, withPriority(10))
	high := s.insert(q, withPriority(1), withDelay(200*time.Millisecond))
	s.waitPast(high.RunAt)
	if j := s.fetchOne(q, longLease); j.ID != high.ID {
		s.t.Fatalf("fetched %s (priority %d), want the due priority-1 job %s ahead of pending priority-10 %s", j.ID, j.Priority, high.ID, low.ID)
	}
}
