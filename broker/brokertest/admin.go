package brokertest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/aibos/worker/broker"
)

// testPauseResume: a paused queue accepts jobs but leases none; resuming
// makes them fetchable; both are idempotent and per queue.
func testPauseResume(s *bundle) {
	q := "pause"
	for range 2 {
		if err := s.b.QueuePause(s.ctx, q); err != nil {
			s.t.Fatalf("QueuePause: %v", err)
		}
	}
	a := s.insert(q)
	other := s.insert("pause-other")
	_, err := s.fetchErr(q, 10, longLease)
	wantErr(s.t, "JobFetch of a paused queue", err, broker.ErrQueuePaused)
	if st := s.stats(q); !st.Paused || st.Pending != 1 {
		s.t.Fatalf("QueueStats of a paused queue with one job: %+v; want Paused and 1 pending", *st)
	}
	s.wantState(q, a.ID, broker.StatePending)
	if j := s.fetchOne("pause-other", longLease); j.ID != other.ID {
		s.t.Fatalf("fetched %s from an unpaused queue, want %s", j.ID, other.ID)
	}

	for range 2 {
		if err := s.b.QueueResume(s.ctx, q); err != nil {
			s.t.Fatalf("QueueResume: %v", err)
		}
	}
	if st := s.stats(q); st.Paused {
		s.t.Fatalf("QueueStats after QueueResume: %+v; want not paused", *st)
	}
	if j := s.fetchOne(q, longLease); j.ID != a.ID {
		s.t.Fatalf("fetched %s after resume, want %s", j.ID, a.ID)
	}
}

// testJobGetDelete: JobGet finds a job only in its queue; JobDelete removes
// a job that is not active, whole, freeing its id and unique key.
func testJobGetDelete(s *bundle) {
	q := "delete"
	s.wantNotFound(q, "no-such-job")
	a := s.insert(q)
	s.wantNotFound("delete-other", a.ID)
	s.delete(q, a.ID)
	s.wantNotFound(q, a.ID)
	wantErr(s.t, "JobDelete of a deleted job", s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: a.ID}), broker.ErrNotFound)
	s.fetchNone(q, "the only job was deleted")
	s.wantCounts(q, counts{})
	s.delete(q, s.insert(q, withID(a.ID)).ID) // the id is free again

	b := s.insert(q)
	fb := s.fetchOne(q, longLease)
	wantErr(s.t, "JobDelete of an active job", s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: b.ID}), broker.ErrWrongState)
	s.wantState(q, b.ID, broker.StateActive)
	s.complete(fb, nil)
	s.delete(q, b.ID)
	s.wantNotFound(q, b.ID)

	c := s.insert(q, withDelay(200*time.Millisecond), withKey("k"))
	s.delete(q, c.ID)
	s.insert(q, withKey("k"), withDelay(time.Hour)) // the unique key is free again
	s.waitPast(c.RunAt)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Promoted != 0 {
		s.t.Fatalf("QueueMaintain promoted %d jobs; the due one was deleted", r.Promoted)
	}
	s.fetchNone(q, "the due scheduled job was deleted")

	d := s.insert(q, withAttempts(1))
	s.fail(s.fetchOne(q, longLease), "boom", 0, false)
	s.delete(q, d.ID)
	s.wantCounts(q, counts{broker.StateScheduled: 1})
}

func (s *bundle) delete(q, id string) {
	s.t.Helper()
	if err := s.b.JobDelete(s.ctx, &broker.JobDeleteParams{Queue: q, ID: id}); err != nil {
		s.t.Fatalf("JobDelete(%s, %s): %v", q, id, err)
	}
}

// list pages through a listing with the given page size, checks the
// NextOffset of every page, and returns the ids in listing order.
func (s *bundle) list(p broker.JobListParams) []string {
	s.t.Helper()
	var got []string
	for page := 0; ; page++ {
		res, err := s.b.JobList(s.ctx, &p)
		if err != nil {
			s.t.Fatalf("JobList(%+v): %v", p, err)
		}
		limit := p.Limit
		if limit == 0 {
			limit = 100
		}
		for _, j := range res.Jobs {
			if j.State != p.State || (p.TenantID != "" && j.TenantID != p.TenantID) || (p.Type != "" && j.Type != p.Type) {
				s.t.Fatalf("JobList(%+v) returned job %s (%s, tenant %q, type %q)", p, j.ID, j.State, j.TenantID, j.Type)
			}
		}
		got = append(got, ids(res.Jobs)...)
		switch {
		case res.NextOffset == -1:
			if len(res.Jobs) > limit {
				s.t.Fatalf("JobList(%+v): %d jobs on a page of %d", p, len(res.Jobs), limit)
			}
			return got
		case len(res.Jobs) != limit || res.NextOffset != p.Offset+limit:
			s.t.Fatalf("JobList(%+v): %d jobs, NextOffset %d; a page with a next page must be full and point after itself", p, len(res.Jobs), res.NextOffset)
		case page > 1000:
			s.t.Fatalf("JobList(%+v): more than 1000 pages", p)
		}
		p.Offset = res.NextOffset
	}
}

// testJobList: listings are ordered per state, filtered by tenant and
// type, and paginated.
func testJobList(s *bundle) {
	q := "list"
	var inserted []*broker.Job
	for i := range 25 {
		inserted = append(inserted, s.insert(q, withPriority(i%3), func(p *broker.JobInsertParams) {
			p.TenantID = []string{"t1", "t2"}[i%2]
			p.Type = map[bool]string{true: "type.a", false: "type.b"}[i%5 == 0]
		}))
	}
	want := byPriority(inserted) // pending: fetch order
	wantIDs(s.t, "JobList pending, pages of 10", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, Limit: 10}), want)
	wantIDs(s.t, "JobList pending, one page", s.list(broker.JobListParams{Queue: q, State: broker.StatePending}), want)
	filter := func(keep func(*broker.Job) bool) []string {
		var out []string
		for _, id := range want {
			for _, j := range inserted {
				if j.ID == id && keep(s.get(q, id)) {
					out = append(out, id)
				}
			}
		}
		return out
	}
	t1 := filter(func(j *broker.Job) bool { return j.TenantID == "t1" })
	wantIDs(s.t, "JobList pending of tenant t1, pages of 4", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, TenantID: "t1", Limit: 4}), t1)
	typeA := filter(func(j *broker.Job) bool { return j.Type == "type.a" })
	wantIDs(s.t, "JobList pending of type.a", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, Type: "type.a", Limit: 2}), typeA)
	both := filter(func(j *broker.Job) bool { return j.Type == "type.a" && j.TenantID == "t2" })
	wantIDs(s.t, "JobList pending of tenant t2 and type.a", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, TenantID: "t2", Type: "type.a"}), both)
	wantIDs(s.t, "JobList of an unknown tenant", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, TenantID: "t9"}), nil)
	wantIDs(s.t, "JobList past the end", s.list(broker.JobListParams{Queue: q, State: broker.StatePending, Offset: 25}), nil)
	wantIDs(s.t, "JobList of completed in a queue with none", s.list(broker.JobListParams{Queue: q, State: broker.StateCompleted}), nil)

	// Limit 0 means 100.
	big, err := s.b.JobInsertMany(s.ctx, s.batch("list-big", 120))
	if err != nil {
		s.t.Fatalf("JobInsertMany: %v", err)
	}
	res, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: "list-big", State: broker.StatePending})
	if err != nil || len(res.Jobs) != 100 || res.NextOffset != 100 {
		s.t.Fatalf("JobList with Limit 0 of 120 jobs: %v; want 100 jobs and NextOffset 100", err)
	}
	wantIDs(s.t, "JobList of a bulk-inserted batch", s.list(broker.JobListParams{Queue: "list-big", State: broker.StatePending}), ids(big))

	testListOrders(s)
}

// testListOrders: scheduled by RunAt, active by lease expiry, finished
// states newest first.
func testListOrders(s *bundle) {
	q := "list-orders"
	var sched []string
	for _, d := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		sched = append(sched, s.insert(q, withDelay(d)).ID)
	}
	wantIDs(s.t, "JobList scheduled (by RunAt)", s.list(broker.JobListParams{Queue: q, State: broker.StateScheduled}), []string{sched[1], sched[2], sched[0]})

	var active []*broker.Job
	for _, l := range []time.Duration{60 * time.Second, 20 * time.Second, 40 * time.Second} {
		s.insert(q)
		active = append(active, s.fetchOne(q, l))
	}
	wantIDs(s.t, "JobList active (by lease expiry)", s.list(broker.JobListParams{Queue: q, State: broker.StateActive, Limit: 2}),
		[]string{active[1].ID, active[2].ID, active[0].ID})

	for _, f := range []*broker.Job{active[2], active[0], active[1]} {
		s.complete(f, nil)
		s.waitPast(s.get(q, f.ID).FinishedAt) // distinct finish times
	}
	wantIDs(s.t, "JobList completed (newest first)", s.list(broker.JobListParams{Queue: q, State: broker.StateCompleted, Limit: 2}),
		[]string{active[1].ID, active[0].ID, active[2].ID})

	var dead []string
	for range 3 {
		s.insert(q, withAttempts(1))
		f := s.fetchOne(q, longLease)
		s.fail(f, "boom", 0, false)
		dead = append(dead, f.ID)
		s.waitPast(s.get(q, f.ID).FinishedAt)
	}
	wantIDs(s.t, "JobList dead (newest first)", s.list(broker.JobListParams{Queue: q, State: broker.StateDead}), []string{dead[2], dead[1], dead[0]})
}

// testQueueStats: one job in every state is counted in its state.
func testQueueStats(s *bundle) {
	q := "stats"
	s.insert(q)
	s.fetchOne(q, longLease) // active
	s.insert(q)
	s.complete(s.fetchOne(q, longLease), nil) // completed
	s.insert(q)
	s.fail(s.fetchOne(q, longLease), "boom", 0, true) // dead
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: s.insert(q).ID}); err != nil {
		s.t.Fatalf("JobCancel: %v", err)
	}
	x := s.insert(q, withTTL(time.Millisecond))
	s.waitPast(s.get(q, x.ID).ExpiresAt)
	s.maintain(&broker.QueueMaintainParams{Queue: q}) // expired
	s.insert(q)                                       // pending
	s.insert(q, withDelay(time.Hour))                 // scheduled
	all := counts{}
	for _, st := range broker.States {
		all[st] = 1
	}
	s.wantCounts(q, all)
	if st := s.stats(q); st.Queue != q || st.Paused || st.Unfinished() != 3 {
		s.t.Fatalf("QueueStats(%s) = %+v; want Queue %q, not paused, 3 unfinished", q, *st, q)
	}

	st, err := s.b.QueueStats(s.ctx, &broker.QueueStatsParams{Queue: "stats-unknown"})
	if err != nil || !reflect.DeepEqual(*st, broker.QueueStats{Queue: "stats-unknown"}) {
		s.t.Fatalf("QueueStats of an unknown queue = %+v, %v; want zero counts", st, err)
	}
}

// testQueueList: every queue that held a job or was paused, sorted.
func testQueueList(s *bundle) {
	if names := s.queues(); len(names) != 0 {
		s.t.Fatalf("QueueList of a fresh broker: %v, want none", names)
	}
	for _, q := range []string{"b-queue", "m.queue:1", "a-queue", "b-queue"} {
		s.insert(q)
	}
	if err := s.b.QueuePause(s.ctx, "c-queue"); err != nil {
		s.t.Fatalf("QueuePause: %v", err)
	}
	wantIDs(s.t, "QueueList", s.queues(), []string{"a-queue", "b-queue", "c-queue", "m.queue:1"})
}

// testRetention: QueueMaintain removes completed jobs past the count and
// age rules, and dead jobs past DeadMaxAge, whole; nothing else.
func testRetention(s *bundle) {
	q := "retention"
	var done []string
	for range 5 {
		s.insert(q)
		f := s.fetchOne(q, longLease)
		s.complete(f, json.RawMessage(`{"kept":true}`))
		done = append(done, f.ID)
		s.waitPast(s.get(q, f.ID).FinishedAt) // distinct finish times
	}
	s.insert(q, withAttempts(1))
	s.fail(s.fetchOne(q, longLease), "boom", 0, false)
	pending := s.insert(q)
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q}); r.Removed != 0 {
		s.t.Fatalf("QueueMaintain without retention rules removed %d jobs", r.Removed)
	}
	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxCount: 2}); r.Removed != 3 {
		s.t.Fatalf("QueueMaintain keeping 2 of 5 completed jobs removed %d, want 3", r.Removed)
	}
	for _, id := range done[:3] {
		s.wantNotFound(q, id)
	}
	wantIDs(s.t, "completed jobs kept (the newest 2)", s.list(broker.JobListParams{Queue: q, State: broker.StateCompleted}), []string{done[4], done[3]})
	s.wantCounts(q, counts{broker.StateCompleted: 2, broker.StateDead: 1, broker.StatePending: 1})
	s.wantState(q, pending.ID, broker.StatePending)
	s.delete(q, s.insert(q, withID(done[0])).ID) // removed whole: the id is free

	testRetentionByAge(s)
}

// testRetentionByAge: CompletedMaxAge and DeadMaxAge remove old jobs only.
func testRetentionByAge(s *bundle) {
	const maxAge = 500 * time.Millisecond
	q := "retention-age"
	s.insert(q, withAttempts(1))
	dead := s.fetchOne(q, longLease)
	s.fail(dead, "boom", 0, false)
	s.insert(q)
	old := s.fetchOne(q, longLease)
	s.complete(old, nil)
	s.waitPast(s.get(q, old.ID).FinishedAt.Add(maxAge))
	s.insert(q)
	young := s.fetchOne(q, longLease)
	s.complete(young, nil)
	youngDone := s.get(q, young.ID).FinishedAt

	r := s.maintain(&broker.QueueMaintainParams{Queue: q, CompletedMaxAge: maxAge})
	s.wantNotFound(q, old.ID)
	s.wantState(q, dead.ID, broker.StateDead) // DeadMaxAge 0 keeps dead jobs
	if s.now().Before(youngDone.Add(maxAge)) {
		if r.Removed != 1 {
			s.t.Fatalf("QueueMaintain with CompletedMaxAge removed %d jobs, want 1", r.Removed)
		}
		s.wantState(q, young.ID, broker.StateCompleted)
	}

	if r := s.maintain(&broker.QueueMaintainParams{Queue: q, DeadMaxAge: maxAge}); r.Removed != 1 {
		s.t.Fatalf("QueueMaintain with DeadMaxAge removed %d jobs, want the old dead one", r.Removed)
	}
	s.wantNotFound(q, dead.ID)
}

// testClosedBroker: after Close every method returns ErrClosed.
func testClosedBroker(s *bundle) {
	q := "closed"
	if err := s.b.Ping(s.ctx); err != nil {
		s.t.Fatalf("Ping of an open broker: %v", err)
	}
	a := s.insert(q)
	lp := lease(s.fetchOne(q, longLease))
	if err := s.b.Close(); err != nil {
		s.t.Fatalf("Close: %v", err)
	}
	b, ctx := s.b, s.ctx
	calls := map[string]func() error{
		"JobInsert":     func() error { _, err := b.JobInsert(ctx, s.params(q)); return err },
		"JobInsertMany": func() error { _, err := b.JobInsertMany(ctx, s.batch(q, 2)); return err },
		"JobFetch": func() error {
			_, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 1, LeaseDuration: time.Minute})
			return err
		},
		"JobComplete": func() error {
			_, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lp}})
			return err
		},
		"JobFail": func() error {
			_, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "x"})
			return err
		},
		"JobRelease":     func() error { return b.JobRelease(ctx, &lp) },
		"JobLeaseExtend": func() error { _, err := b.JobLeaseExtend(ctx, []*broker.JobLeaseParams{&lp}, time.Minute); return err },
		"JobProgress":    func() error { return b.JobProgress(ctx, &lp, json.RawMessage(`1`)) },
		"JobGet":         func() error { _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: q, ID: a.ID}); return err },
		"JobList": func() error {
			_, err := b.JobList(ctx, &broker.JobListParams{Queue: q, State: broker.StateActive})
			return err
		},
		"JobCancel":     func() error { _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: q, ID: a.ID}); return err },
		"JobRetry":      func() error { _, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: q, ID: a.ID}); return err },
		"JobDelete":     func() error { return b.JobDelete(ctx, &broker.JobDeleteParams{Queue: q, ID: a.ID}) },
		"QueueStats":    func() error { _, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q}); return err },
		"QueueList":     func() error { _, err := b.QueueList(ctx); return err },
		"QueuePause":    func() error { return b.QueuePause(ctx, q) },
		"QueueResume":   func() error { return b.QueueResume(ctx, q) },
		"QueueMaintain": func() error { _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: q}); return err },
		"Ping":          func() error { return b.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, broker.ErrClosed) {
			s.t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := b.Close(); err != nil && !errors.Is(err, broker.ErrClosed) {
		s.t.Errorf("second Close: %v, want nil or ErrClosed", err)
	}
}

// testJobListCursor: a walk by cursor (JobListParams.After) lists every
// job that stays in the state throughout, once, in order, although jobs
// listed before (the page's last among them) are deleted and others
// inserted between pages, which shifts every offset. Pending, scheduled
// jobs due at one instant (equal sort keys) and finished jobs (newest
// first) each take such a walk, as do a tenant's and a type's listings.
func testJobListCursor(s *bundle) {
	q := "list-cursor"
	for i := range 24 {
		s.insert(q, withPriority(i%3+1))
	}
	s.walkCursor(broker.JobListParams{Queue: q, State: broker.StatePending, Limit: 5}, func() { s.insert(q, withPriority(1)) })

	at := time.Now().Add(time.Hour).Truncate(time.Second)
	batch := s.batch(q, 20)
	for _, p := range batch {
		p.RunAt = at
	}
	if _, err := s.b.JobInsertMany(s.ctx, batch); err != nil {
		s.t.Fatalf("JobInsertMany of scheduled jobs: %v", err)
	}
	s.walkCursor(broker.JobListParams{Queue: q, State: broker.StateScheduled, Limit: 4}, func() { s.insert(q, withDelay(time.Hour)) })

	for _, f := range s.fetch(q, 20, longLease) {
		s.complete(f, nil)
	}
	s.walkCursor(broker.JobListParams{Queue: q, State: broker.StateCompleted, Limit: 3}, nil)

	qt := "list-cursor-filtered"
	for i := range 30 {
		s.insert(qt, func(p *broker.JobInsertParams) {
			p.TenantID = []string{"t1", "t2"}[i%2]
			p.Type = []string{"type.a", "type.b", "type.c"}[i%3]
		})
	}
	s.walkCursor(broker.JobListParams{Queue: qt, State: broker.StatePending, TenantID: "t1", Limit: 2}, nil)
	s.walkCursor(broker.JobListParams{Queue: qt, State: broker.StatePending, Type: "type.b", Limit: 2}, nil)
	s.walkCursor(broker.JobListParams{Queue: qt, State: broker.StatePending, TenantID: "t2", Type: "type.c", Limit: 2}, nil)

	_, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: broker.StatePending, After: "not a cursor"})
	wantErr(s.t, "JobList with a cursor it never returned", err, broker.ErrInvalidJob)
	_, err = s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: broker.StatePending, Offset: 1, After: "x"})
	wantErr(s.t, "JobList with both an offset and a cursor", err, broker.ErrInvalidJob)
}

// walkCursor walks p's listing by cursor. Between pages it deletes the
// jobs the previous page listed (the cursor's own job too) and calls
// between, if not nil; afterwards it checks that the walk listed, in
// order and once each, every job the listing held at the start and still
// holds at the end.
func (s *bundle) walkCursor(p broker.JobListParams, between func()) {
	s.t.Helper()
	before := s.list(p)
	var got []string
	for page := 0; ; page++ {
		res, err := s.b.JobList(s.ctx, &p)
		if err != nil {
			s.t.Fatalf("JobList(%+v), page %d of a walk by cursor: %v", p, page, err)
		}
		got = append(got, ids(res.Jobs)...)
		if res.Cursor == "" {
			if res.NextOffset != -1 {
				s.t.Fatalf("JobList(%+v): NextOffset %d with no cursor", p, res.NextOffset)
			}
			break
		}
		if len(res.Jobs) != cmp.Or(p.Limit, 100) {
			s.t.Fatalf("JobList(%+v): %d jobs on a page with a next page", p, len(res.Jobs))
		}
		// Every third page's jobs go: the next page starts after a job
		// deleted, and after one kept, which it must not list again.
		if page%3 == 0 {
			for _, j := range res.Jobs {
				s.delete(p.Queue, j.ID)
			}
		}
		if between != nil {
			between()
		}
		p.After = res.Cursor
	}
	p.After = ""
	stayed := map[string]bool{}
	for _, id := range s.list(p) {
		stayed[id] = true
	}
	var want, walked []string
	for _, id := range before {
		if stayed[id] {
			want = append(want, id)
		}
	}
	for _, id := range got {
		if stayed[id] && slices.Contains(before, id) {
			walked = append(walked, id)
		}
	}
	wantIDs(s.t, fmt.Sprintf("JobList(%+v) by cursor: the jobs present throughout", p), walked, want)
}
