package brokertest

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// testInsertRoundTrip: what the enqueuer sets is what JobGet and the worker
// see.
func testInsertRoundTrip(s *bundle) {
	q := "roundtrip"
	p := s.params(q)
	p.Type = "invoice.processing"
	p.Data = json.RawMessage(`{"invoice":{"id":"INV-1","lines":[1,2.5,"x"],"note":"ünïcødé ✓"}}`)
	p.Priority = 17
	p.MaxAttempts = 7
	p.TenantID, p.CompanyID = "tenant-a", "company-b"
	p.Headers = map[string]string{"trace-id": "abc123", "origin": "api"}
	p.UniqueKey = "invoice:INV-1"
	p.Timeout = 90 * time.Second
	ins := s.insertP(p)
	if ins.State != broker.StatePending || ins.Attempt != 0 || !near(ins.RunAt, ins.CreatedAt) {
		s.t.Fatalf("inserted job: state %q attempt %d RunAt %v CreatedAt %v; want pending, attempt 0, due at creation", ins.State, ins.Attempt, ins.RunAt, ins.CreatedAt)
	}
	s.sameFields(p, s.get(q, p.ID), "JobGet")
	f := s.fetchOne(q, longLease)
	s.sameFields(p, f, "JobFetch")

	// No data means a null payload.
	n := s.insert(q, func(p *broker.JobInsertParams) { p.Data = nil })
	if j := s.get(q, n.ID); !jsonEqual(j.Data, nil) {
		s.t.Fatalf("job inserted without data has Data %s, want empty or null", j.Data)
	}
}

// sameFields checks that j carries the fields p set.
func (s *bundle) sameFields(p *broker.JobInsertParams, j *broker.Job, via string) {
	s.t.Helper()
	if j.ID != p.ID || j.Queue != p.Queue || j.Type != p.Type || j.Priority != broker.PriorityOrDefault(p.Priority) || j.MaxAttempts != p.MaxAttempts ||
		j.TenantID != p.TenantID || j.CompanyID != p.CompanyID || j.UniqueKey != p.UniqueKey || j.Timeout != p.Timeout ||
		!reflect.DeepEqual(j.Headers, p.Headers) || !jsonEqual(j.Data, p.Data) {
		s.t.Fatalf("job read back via %s differs from what was inserted:\n inserted %+v\n read     %+v", via, *p, *j)
	}
}

// testBulkAtomic: JobInsertMany writes all jobs or none.
func testBulkAtomic(s *bundle) {
	q := "bulk"
	batch := s.batch(q, 4)
	batch[2].Data = json.RawMessage(`{"broken":`)
	s.rejectInvalidBatch(batch, 2, "data")

	batch = s.batch(q, 3)
	batch[1].Type = ""
	s.rejectInvalidBatch(batch, 1, "type")

	batch = s.batch(q, 3)
	batch[2].Queue = "bulk-other"
	s.rejectInvalidBatch(batch, 2, "queue")

	_, err := s.b.JobInsertMany(s.ctx, nil)
	wantErr(s.t, "JobInsertMany of an empty batch", err, broker.ErrInvalidJob)

	// Duplicates inside the batch.
	batch = s.batch(q, 3)
	batch[2].ID = batch[0].ID
	s.rejectDuplicateBatch(batch, "", "a batch with the same id twice")
	batch = s.batch(q, 3)
	batch[0].UniqueKey, batch[2].UniqueKey = "k", "k"
	s.rejectDuplicateBatch(batch, "", "a batch with the same unique key twice")
	s.wantCounts(q, counts{})
	if names := s.queues(); len(names) != 0 {
		s.t.Fatalf("rejected batches left queues %v behind", names)
	}

	// Duplicates of a job already stored.
	x := s.insert(q, withKey("held"))
	batch = s.batch(q, 3)
	batch[2].ID = x.ID
	s.rejectDuplicateBatch(batch, x.ID, "a batch colliding with a stored job id")
	batch = s.batch(q, 3)
	batch[1].UniqueKey = "held"
	s.rejectDuplicateBatch(batch, x.ID, "a batch colliding with a stored unique key")
	s.wantCounts(q, counts{broker.StatePending: 1})

	// A valid batch of 1000 is stored whole, in order.
	q = "bulk-1000"
	batch = s.batch(q, 1000)
	jobs, err := s.b.JobInsertMany(s.ctx, batch)
	if err != nil || len(jobs) != len(batch) {
		s.t.Fatalf("JobInsertMany of 1000 valid jobs: %d jobs, %v", len(jobs), err)
	}
	want := make([]string, len(batch))
	for i, p := range batch {
		want[i] = p.ID
		if jobs[i] == nil || jobs[i].State != broker.StatePending {
			s.t.Fatalf("JobInsertMany result %d: %+v, want a pending job", i, jobs[i])
		}
	}
	wantIDs(s.t, "JobInsertMany result order", ids(jobs), want)
	s.wantCounts(q, counts{broker.StatePending: 1000})
	wantIDs(s.t, "fetch order of a bulk-inserted batch", ids(s.fetch(q, 1000, longLease)), want)
}

// batch returns n valid insert params for one queue.
func (s *bundle) batch(q string, n int) []*broker.JobInsertParams {
	ps := make([]*broker.JobInsertParams, n)
	for i := range ps {
		ps[i] = s.params(q)
	}
	return ps
}

// rejectInvalidBatch expects an *InvalidError naming index and field, and
// checks that none of the batch was written.
func (s *bundle) rejectInvalidBatch(batch []*broker.JobInsertParams, index int, field string) {
	s.t.Helper()
	jobs, err := s.b.JobInsertMany(s.ctx, batch)
	var ie *broker.InvalidError
	if !errors.Is(err, broker.ErrInvalidJob) || !errors.As(err, &ie) || ie.Index != index || ie.Field != field {
		s.t.Fatalf("JobInsertMany with a bad %s at index %d: %v; want an *InvalidError naming index %d, field %q", field, index, err, index, field)
	}
	s.nothingWritten(batch, jobs)
}

// rejectDuplicateBatch expects a *DuplicateError (naming existing, when not
// empty) and checks that none of the batch was written.
func (s *bundle) rejectDuplicateBatch(batch []*broker.JobInsertParams, existing, what string) {
	s.t.Helper()
	jobs, err := s.b.JobInsertMany(s.ctx, batch)
	var de *broker.DuplicateError
	if !errors.Is(err, broker.ErrDuplicate) || !errors.As(err, &de) {
		s.t.Fatalf("JobInsertMany of %s: %v; want a *DuplicateError", what, err)
	}
	if existing != "" && de.ExistingID != existing {
		s.t.Fatalf("JobInsertMany of %s: ExistingID %q, want %q", what, de.ExistingID, existing)
	}
	s.nothingWritten(batch, jobs, existing)
}

// nothingWritten checks that a rejected batch left none of its jobs
// behind, except the stored jobs it collided with (ids in keep).
func (s *bundle) nothingWritten(batch []*broker.JobInsertParams, jobs []*broker.Job, keep ...string) {
	s.t.Helper()
	if len(jobs) != 0 {
		s.t.Fatalf("rejected JobInsertMany returned %d jobs", len(jobs))
	}
	for _, p := range batch {
		if !slices.Contains(keep, p.ID) {
			s.wantNotFound(p.Queue, p.ID)
		}
	}
}

// queues returns QueueList and fails the case on error.
func (s *bundle) queues() []string {
	s.t.Helper()
	names, err := s.b.QueueList(s.ctx)
	if err != nil {
		s.t.Fatalf("QueueList: %v", err)
	}
	return names
}

// testDuplicateUniqueKey: a unique key is held while its job is unfinished
// and free once it finishes; ids are unique whatever the state.
func testDuplicateUniqueKey(s *bundle) {
	q := "unique"
	first := s.insert(q, withKey("invoice-42"))
	s.rejectDuplicate(q, "invoice-42", first.ID, "pending")
	f := s.fetchOne(q, longLease)
	s.rejectDuplicate(q, "invoice-42", first.ID, "active")
	s.complete(f, nil)
	second := s.insert(q, withKey("invoice-42")) // completed: the key is free

	sched := s.insert(q, withKey("k-sched"), withDelay(time.Hour))
	s.rejectDuplicate(q, "k-sched", sched.ID, "scheduled")
	if _, err := s.b.JobCancel(s.ctx, &broker.JobCancelParams{Queue: q, ID: sched.ID}); err != nil {
		s.t.Fatalf("JobCancel(%s): %v", sched.ID, err)
	}
	taker := s.insert(q, withKey("k-sched")) // cancelled: the key is free
	_, err := s.b.JobRetry(s.ctx, &broker.JobRetryParams{Queue: q, ID: sched.ID})
	wantErr(s.t, "JobRetry of a cancelled job whose unique key was taken meanwhile", err, broker.ErrDuplicate)
	s.wantState(q, sched.ID, broker.StateCancelled)
	s.wantState(q, taker.ID, broker.StatePending)

	// Dead: the key is free.
	qd := "unique-dead"
	d := s.insert(qd, withKey("k-dead"))
	s.fail(s.fetchOne(qd, longLease), "boom", 0, true)
	s.wantState(qd, d.ID, broker.StateDead)
	s.insert(qd, withKey("k-dead"))

	// Unique keys are per queue.
	s.insert("unique-other", withKey(second.UniqueKey))

	// The same id twice, whatever the first one's state.
	for _, id := range []string{first.ID, second.ID, sched.ID} {
		_, err := s.b.JobInsert(s.ctx, s.params(q, withID(id)))
		var de *broker.DuplicateError
		if !errors.Is(err, broker.ErrDuplicate) || !errors.As(err, &de) || de.ExistingID != id {
			s.t.Fatalf("JobInsert of id %s a second time: %v; want a *DuplicateError naming %s", id, err, id)
		}
	}
	s.wantCounts(q, counts{broker.StateCompleted: 1, broker.StatePending: 2, broker.StateCancelled: 1})
}

// rejectDuplicate inserts a job with key and expects a *DuplicateError
// naming existing, with nothing written.
func (s *bundle) rejectDuplicate(q, key, existing, state string) {
	s.t.Helper()
	p := s.params(q, withKey(key))
	_, err := s.b.JobInsert(s.ctx, p)
	var de *broker.DuplicateError
	if !errors.Is(err, broker.ErrDuplicate) || !errors.As(err, &de) || de.ExistingID != existing {
		s.t.Fatalf("JobInsert with unique key %q held by %s job %s: %v; want a *DuplicateError naming %s", key, state, existing, err, existing)
	}
	s.wantNotFound(q, p.ID)
	_, err = s.b.JobInsertMany(s.ctx, []*broker.JobInsertParams{s.params(q), p})
	if !errors.As(err, &de) || de.ExistingID != existing {
		s.t.Fatalf("JobInsertMany with unique key %q held by %s job %s: %v; want a *DuplicateError naming %s", key, state, existing, err, existing)
	}
	s.wantNotFound(q, p.ID)
}

// testQueueFull: MaxQueueLength bounds scheduled + pending jobs; a rejected
// insert or batch writes nothing.
func testQueueFull(s *bundle) {
	q := "full"
	limit := func(n int) func(*broker.JobInsertParams) {
		return func(p *broker.JobInsertParams) { p.MaxQueueLength = n }
	}
	a := s.insert(q, limit(3))
	s.insert(q, limit(3), withDelay(time.Hour)) // scheduled jobs count too
	s.insert(q, limit(3))

	over := s.params(q, limit(3))
	_, err := s.b.JobInsert(s.ctx, over)
	wantErr(s.t, "the 4th JobInsert with MaxQueueLength 3", err, broker.ErrQueueFull)
	s.wantNotFound(q, over.ID)

	batch := s.batch(q, 2)
	for _, p := range batch {
		p.MaxQueueLength = 4
	}
	jobs, err := s.b.JobInsertMany(s.ctx, batch)
	wantErr(s.t, "JobInsertMany of 2 jobs into 3 of MaxQueueLength 4", err, broker.ErrQueueFull)
	s.nothingWritten(batch, jobs)
	s.wantCounts(q, counts{broker.StatePending: 2, broker.StateScheduled: 1})

	// Active jobs do not count: fetching one makes room.
	f := s.fetchOne(q, longLease)
	if f.ID != a.ID {
		s.t.Fatalf("fetched %s, want %s", f.ID, a.ID)
	}
	s.insert(q, limit(3))
	_, err = s.b.JobInsert(s.ctx, s.params(q, limit(3)))
	wantErr(s.t, "JobInsert into a full queue after refilling it", err, broker.ErrQueueFull)
	s.complete(f, nil)
	_, err = s.b.JobInsert(s.ctx, s.params(q, limit(3)))
	wantErr(s.t, "JobInsert into a full queue after completing an active job", err, broker.ErrQueueFull)

	// A batch that fits exactly, and an insert without a limit, succeed.
	fit := s.batch(q, 2)
	for _, p := range fit {
		p.MaxQueueLength = 5
	}
	if _, err := s.b.JobInsertMany(s.ctx, fit); err != nil {
		s.t.Fatalf("JobInsertMany of 2 jobs into 3 of MaxQueueLength 5: %v", err)
	}
	s.insert(q)
	s.wantCounts(q, counts{broker.StatePending: 5, broker.StateScheduled: 1, broker.StateCompleted: 1})

	// Jobs of one state alone fill a queue too: a broker that stops
	// counting early must stop past the limit, not at it.
	q = "full-pending"
	for range 3 {
		s.insert(q)
	}
	batch = s.batch(q, 2)
	for _, p := range batch {
		p.MaxQueueLength = 4
	}
	jobs, err = s.b.JobInsertMany(s.ctx, batch)
	wantErr(s.t, "JobInsertMany of 2 jobs into 3 pending of MaxQueueLength 4", err, broker.ErrQueueFull)
	s.nothingWritten(batch, jobs)
}

// testInvalidInput: bad input is rejected with ErrInvalidJob naming the
// problem, and nothing is written.
func testInvalidInput(s *bundle) {
	q := "invalid"
	big := json.RawMessage(`"` + strings.Repeat("a", broker.MaxDataBytes) + `"`)
	for _, c := range []struct {
		what  string
		field string
		mod   func(p *broker.JobInsertParams)
	}{
		{"an empty queue", "queue", func(p *broker.JobInsertParams) { p.Queue = "" }},
		{"a queue name with braces", "queue", func(p *broker.JobInsertParams) { p.Queue = "in{valid}" }},
		{"an empty type", "type", func(p *broker.JobInsertParams) { p.Type = "" }},
		{"an empty id", "id", func(p *broker.JobInsertParams) { p.ID = "" }},
		{"a negative delay", "delay", func(p *broker.JobInsertParams) { p.Delay = -time.Second }},
		{"bad JSON data", "data", func(p *broker.JobInsertParams) { p.Data = json.RawMessage(`{"a":`) }},
		{"data over MaxDataBytes", "data", func(p *broker.JobInsertParams) { p.Data = big }},
		{"a priority above MaxPriority", "priority", withPriority(broker.MaxPriority + 1)},
		{"a negative priority", "priority", withPriority(-1)},
		{"MaxAttempts 0", "max_attempts", withAttempts(0)},
	} {
		p := s.params(q, c.mod)
		_, err := s.b.JobInsert(s.ctx, p)
		var ie *broker.InvalidError
		if !errors.Is(err, broker.ErrInvalidJob) || !errors.As(err, &ie) || ie.Field != c.field || !strings.Contains(err.Error(), c.field) {
			s.t.Fatalf("JobInsert with %s: %v; want an *InvalidError naming %q", c.what, err, c.field)
		}
		_, err = s.b.JobInsertMany(s.ctx, []*broker.JobInsertParams{s.params(q), p})
		if !errors.As(err, &ie) || ie.Index != 1 || ie.Field != c.field {
			s.t.Fatalf("JobInsertMany with %s at index 1: %v; want an *InvalidError naming index 1, %q", c.what, err, c.field)
		}
	}

	for _, c := range []struct {
		what, word string
		p          broker.JobFetchParams
	}{
		{"limit 0", "limit", broker.JobFetchParams{Queue: q, Limit: 0, LeaseDuration: time.Minute}},
		{"limit 1001", "limit", broker.JobFetchParams{Queue: q, Limit: 1001, LeaseDuration: time.Minute}},
		{"a zero lease", "lease", broker.JobFetchParams{Queue: q, Limit: 1}},
		{"an empty queue name", "queue", broker.JobFetchParams{Limit: 1, LeaseDuration: time.Minute}},
	} {
		jobs, err := s.b.JobFetch(s.ctx, &c.p)
		if !errors.Is(err, broker.ErrInvalidJob) || !containsFold(err.Error(), c.word) || len(jobs) != 0 {
			s.t.Fatalf("JobFetch with %s: %d jobs, %v; want ErrInvalidJob naming the %s", c.what, len(jobs), err, c.word)
		}
	}
	_, err := s.b.JobList(s.ctx, &broker.JobListParams{Queue: q, State: "running"})
	wantErr(s.t, "JobList of an unknown state", err, broker.ErrInvalidJob)
	for what, call := range map[string]func() error{
		"JobGet":     func() error { _, err := s.b.JobGet(s.ctx, nil); return err },
		"JobCancel":  func() error { _, err := s.b.JobCancel(s.ctx, nil); return err },
		"JobRetry":   func() error { _, err := s.b.JobRetry(s.ctx, nil); return err },
		"JobDelete":  func() error { return s.b.JobDelete(s.ctx, nil) },
		"JobList":    func() error { _, err := s.b.JobList(s.ctx, nil); return err },
		"QueueStats": func() error { _, err := s.b.QueueStats(s.ctx, nil); return err },
	} {
		if err := call(); !errors.Is(err, broker.ErrInvalidJob) || !strings.Contains(err.Error(), "params are nil") {
			s.t.Fatalf("%s with nil params: %v; want ErrInvalidJob saying the params are nil", what, err)
		}
	}

	s.wantCounts(q, counts{})
	if names := s.queues(); len(names) != 0 {
		s.t.Fatalf("rejected input left queues %v behind", names)
	}
}

// testConcurrentInserts: JobInsert calls racing on one queue (which a
// broker may combine into one write) each get their own outcome: one of
// many inserts of one id or one unique key wins and the others get
// ErrDuplicate, every other job is stored, and a queue length limit holds.
func testConcurrentInserts(s *bundle) {
	const n = 24
	q := "racing"
	sameID := s.id("same")
	var wg sync.WaitGroup
	errID, errKey, errOwn := make([]error, n), make([]error, n), make([]error, n)
	owns := make([]*broker.JobInsertParams, n)
	for g := range n {
		owns[g] = s.params(q)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errID[g] = s.b.JobInsert(s.ctx, s.params(q, func(p *broker.JobInsertParams) { p.ID = sameID }))
			_, errKey[g] = s.b.JobInsert(s.ctx, s.params(q, withKey("race-key")))
			_, errOwn[g] = s.b.JobInsert(s.ctx, owns[g])
		}()
	}
	wg.Wait()
	won := func(what string, errs []error) {
		s.t.Helper()
		wins := 0
		for g, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, broker.ErrDuplicate):
				s.t.Fatalf("racing insert of %s, goroutine %d: %v, want success or ErrDuplicate", what, g, err)
			}
		}
		if wins != 1 {
			s.t.Fatalf("%d of %d racing inserts of %s succeeded, want exactly 1", wins, n, what)
		}
	}
	won("one id", errID)
	won("one unique key", errKey)
	for g, err := range errOwn {
		if err != nil {
			s.t.Fatalf("racing insert of a job of its own, goroutine %d: %v", g, err)
		}
		s.sameFields(owns[g], s.get(q, owns[g].ID), "JobGet after a racing insert")
	}
	if st := s.stats(q); st.Pending != n+2 {
		s.t.Fatalf("pending = %d after the races, want %d own jobs + 2 winners", st.Pending, n)
	}

	full := "racing-full"
	errs := make([]error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[g] = s.b.JobInsert(s.ctx, s.params(full, func(p *broker.JobInsertParams) { p.MaxQueueLength = 5 }))
		}()
	}
	wg.Wait()
	stored := 0
	for g, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, broker.ErrQueueFull):
			s.t.Fatalf("racing insert under a limit, goroutine %d: %v, want success or ErrQueueFull", g, err)
		}
	}
	if st := s.stats(full); stored != 5 || st.Pending != 5 {
		s.t.Fatalf("%d racing inserts under a limit of 5 succeeded, %d pending; want 5 and 5", stored, st.Pending)
	}
}
