package brokertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// The cases of broker.Committer, the generic primitive packages workflow
// and schedule are built on. They skip brokers without it.
func init() {
	cases = append(cases,
		testCase{"CommitFenced", testCommitFenced},
		testCase{"CommitAllOrNothing", testCommitAllOrNothing},
		testCase{"CommitCompareAndSet", testCommitCAS},
		testCase{"CommitOptionalInsert", testCommitOptionalInsert},
		testCase{"CommitNotBefore", testCommitNotBefore},
		testCase{"CommitCancelDelete", testCommitCancelDelete},
		testCase{"DocIndexList", testDocIndexList},
		testCase{"CommitInvalidInput", testCommitInvalidInput},
	)
}

// committer returns the case's broker as a Committer or skips.
func (s *bundle) committer() broker.Committer {
	s.t.Helper()
	c, ok := s.b.(broker.Committer)
	if !ok {
		s.t.Skipf("%T does not implement broker.Committer", s.b)
	}
	return c
}

// doc is a document write of a small counter body.
func doc(key string, version int64, n int, index ...broker.IndexEntry) *broker.DocWrite {
	return &broker.DocWrite{Kind: "counter", Key: key, Version: version, Body: json.RawMessage(`{"n":` + strconv.Itoa(n) + `}`), Index: index}
}

// wantDoc fails the case unless the document is at version v with counter n
// (v 0: absent).
func (s *bundle) wantDoc(scope, key string, v int64, n int) {
	s.t.Helper()
	d, err := s.committer().DocGet(s.ctx, scope, "counter", key)
	if v == 0 {
		if !errors.Is(err, broker.ErrDocNotFound) {
			s.t.Fatalf("DocGet(%s): %+v, %v; want ErrDocNotFound", key, d, err)
		}
		return
	}
	if err != nil || d.Version != v || !jsonEqual(d.Body, json.RawMessage(`{"n":`+strconv.Itoa(n)+`}`)) {
		s.t.Fatalf("DocGet(%s) = %+v, %v; want version %d with n %d", key, d, err, v, n)
	}
}

// testCommitFenced: completions and failures in a commit are fenced like
// JobComplete and JobFail; a stale token fails the whole commit and
// nothing of it is applied.
func testCommitFenced(s *bundle) {
	c := s.committer()
	q := "commit-fence"
	s.insert(q, withAttempts(2))
	j := s.fetchOne(q, shortLease)
	s.waitPast(j.LeaseUntil)
	s.maintain(&broker.QueueMaintainParams{Queue: q})
	j2 := s.fetchOne(q, longLease)
	for _, p := range []*broker.CommitParams{
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lease(j)}}, Docs: []*broker.DocWrite{doc("d", 0, 1)},
			Insert: []*broker.CommitInsert{{Job: s.params(q)}}},
		{Scope: q, Fail: []*broker.JobFailParams{{JobLeaseParams: lease(j), Error: "stale"}}, Docs: []*broker.DocWrite{doc("d", 0, 1)}},
	} {
		_, err := c.Commit(s.ctx, p)
		wantErr(s.t, "Commit under the first, stale token", err, broker.ErrLeaseLost)
		s.wantDoc(q, "d", 0, 0)
		s.wantCounts(q, counts{broker.StateActive: 1})
	}
	_, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: "absent", Token: 1}}}})
	wantErr(s.t, "Commit completing an unknown job", err, broker.ErrNotFound)
	res, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Fail: []*broker.JobFailParams{{JobLeaseParams: lease(j2), Error: "boom", RetryDelay: time.Hour}},
		Docs: []*broker.DocWrite{doc("d", 0, 1)}})
	if err != nil || len(res.Failed) != 1 || res.Failed[0] != broker.StateDead {
		got := "<nil>"
		if res != nil {
			got = fmt.Sprint(res.Failed)
		}
		s.t.Fatalf("Commit failing the last attempt under the live token: %s, %v; want dead", got, err)
	}
	if got := s.wantState(q, j2.ID, broker.StateDead); got.LastError != "boom" {
		s.t.Fatalf("failed job's last error %q, want boom", got.LastError)
	}
	s.wantDoc(q, "d", 1, 1)
}

// testCommitAllOrNothing: a commit whose last part is refused (a version
// conflict, a duplicate insert) applies none of its earlier parts.
func testCommitAllOrNothing(s *bundle) {
	c := s.committer()
	q := "commit-atomic"
	if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{doc("held", 0, 1)}}); err != nil {
		s.t.Fatalf("Commit creating a document: %v", err)
	}
	other := s.insert(q)
	s.insert(q, withKey("k"))
	j := s.fetchOne(q, longLease)
	refused := []*broker.CommitParams{
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lease(j)}}, Docs: []*broker.DocWrite{doc("new", 0, 1), doc("held", 0, 2)},
			Insert: []*broker.CommitInsert{{Job: s.params(q)}}, Cancel: []string{other.ID}},
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lease(j)}}, Docs: []*broker.DocWrite{doc("new", 0, 1)},
			Insert: []*broker.CommitInsert{{Job: s.params(q)}, {Job: s.params(q, withKey("k"))}}},
		{Scope: q, Docs: []*broker.DocWrite{doc("new", 0, 1)}, Insert: []*broker.CommitInsert{{Job: s.params(q, withID(other.ID))}}},
	}
	for i, p := range refused {
		if _, err := c.Commit(s.ctx, p); err == nil {
			s.t.Fatalf("refused commit %d was applied", i)
		}
		s.wantDoc(q, "new", 0, 0)
		s.wantDoc(q, "held", 1, 1)
		s.wantCounts(q, counts{broker.StatePending: 1, broker.StateActive: 1})
		s.wantState(q, j.ID, broker.StateActive)
	}
	_, err := c.Commit(s.ctx, refused[0])
	wantErr(s.t, "commit with a stale document version", err, broker.ErrConflict)
	_, err = c.Commit(s.ctx, refused[1])
	wantErr(s.t, "commit inserting a held unique key", err, broker.ErrDuplicate)
	ins := s.params(q)
	res, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lease(j), Result: json.RawMessage(`{"ok":1}`)}},
		Docs: []*broker.DocWrite{doc("new", 0, 1), doc("held", 1, 2)}, Insert: []*broker.CommitInsert{{Job: ins}}})
	if err != nil || len(res.Jobs) != 1 || res.Jobs[0] == nil || res.Jobs[0].ID != ins.ID || !slices.Equal(res.Versions, []int64{1, 2}) {
		s.t.Fatalf("the same commit with the right versions: %+v, %v", res, err)
	}
	if got := s.wantState(q, j.ID, broker.StateCompleted); !jsonEqual(got.Result, json.RawMessage(`{"ok":1}`)) {
		s.t.Fatalf("completed job's result %s", got.Result)
	}
	s.wantDoc(q, "held", 2, 2)
	s.wantState(q, ins.ID, broker.StatePending)
}

// testCommitCAS: version 0 creates, the current version replaces, any
// other is a conflict; concurrent writers that re-read and retry on
// conflict lose no update.
func testCommitCAS(s *bundle) {
	c := s.committer()
	q := "commit-cas"
	write := func(w *broker.DocWrite) error {
		_, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{w}})
		return err
	}
	if err := write(doc("c", 0, 0)); err != nil {
		s.t.Fatalf("create: %v", err)
	}
	wantErr(s.t, "create an existing document", write(doc("c", 0, 9)), broker.ErrConflict)
	wantErr(s.t, "write at a future version", write(doc("c", 5, 9)), broker.ErrConflict)
	wantErr(s.t, "delete at a wrong version", write(&broker.DocWrite{Kind: "counter", Key: "c", Version: 2, Delete: true}), broker.ErrConflict)
	s.wantDoc(q, "c", 1, 0)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					d, err := c.DocGet(s.ctx, q, "counter", "c")
					if err != nil {
						s.t.Errorf("DocGet: %v", err)
						return
					}
					var v struct{ N int }
					if err := json.Unmarshal(d.Body, &v); err != nil {
						s.t.Errorf("decode %s: %v", d.Body, err)
						return
					}
					err = write(doc("c", d.Version, v.N+1))
					if err == nil {
						break
					}
					if !errors.Is(err, broker.ErrConflict) {
						s.t.Errorf("write: %v", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	s.wantDoc(q, "c", 1+writers*each, writers*each)
	if err := write(&broker.DocWrite{Kind: "counter", Key: "c", Version: 1 + writers*each, Delete: true}); err != nil {
		s.t.Fatalf("delete at the current version: %v", err)
	}
	s.wantDoc(q, "c", 0, 0)
}

// testCommitOptionalInsert: an Optional insert refused because its unique
// key is held or its queue is full is skipped and reported, and the rest of
// the commit applies; IfAbsent skips an id that exists.
func testCommitOptionalInsert(s *bundle) {
	c := s.committer()
	q := "commit-optional"
	holder := s.insert(q, withKey("k"))
	res, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{doc("d", 0, 1)}, Insert: []*broker.CommitInsert{
		{Job: s.params(q, withKey("k")), Optional: true},
		{Job: s.params(q, func(p *broker.JobInsertParams) { p.MaxQueueLength = 1 }), Optional: true},
		{Job: s.params(q, withID(holder.ID)), IfAbsent: true},
	}})
	if err != nil {
		s.t.Fatalf("Commit with refused optional inserts: %v", err)
	}
	var dup *broker.DuplicateError
	if len(res.Skipped) != 3 || !errors.As(res.Skipped[0], &dup) || dup.ExistingID != holder.ID || dup.UniqueKey != "k" ||
		!errors.Is(res.Skipped[1], broker.ErrQueueFull) || !errors.Is(res.Skipped[2], broker.ErrDuplicate) ||
		res.Jobs[0] != nil || res.Jobs[1] != nil || res.Jobs[2] != nil {
		s.t.Fatalf("Commit result: jobs %v skipped %v; want all three skipped (unique key, queue full, id)", res.Jobs, res.Skipped)
	}
	s.wantDoc(q, "d", 1, 1)
	s.wantCounts(q, counts{broker.StatePending: 1})
	tick := s.now().Add(-time.Minute).Truncate(time.Millisecond)
	ok := s.params(q, func(p *broker.JobInsertParams) { p.RunAt = tick })
	res, err = c.Commit(s.ctx, &broker.CommitParams{Scope: q, Insert: []*broker.CommitInsert{{Job: ok, Optional: true, IfAbsent: true}}})
	if err != nil || res.Jobs[0] == nil || res.Skipped[0] != nil || res.Jobs[0].State != broker.StatePending {
		s.t.Fatalf("Commit with a free optional insert: %+v, %v", res, err)
	}
	if got := s.wantState(q, ok.ID, broker.StatePending); !near(got.RunAt, tick) {
		s.t.Fatalf("inserted job due at %v, want its RunAt %v", got.RunAt, tick)
	}
	// Two inserts of one commit with one unique key: the second is a
	// duplicate of the first, as in a bulk insert.
	first, second := s.params(q, withKey("twice")), s.params(q, withKey("twice"))
	_, err = c.Commit(s.ctx, &broker.CommitParams{Scope: q, Insert: []*broker.CommitInsert{{Job: first}, {Job: second}}})
	if !errors.Is(err, broker.ErrDuplicate) {
		s.t.Fatalf("Commit inserting one unique key twice: %v, want ErrDuplicate", err)
	}
	s.wantCounts(q, counts{broker.StatePending: 2})
	res, err = c.Commit(s.ctx, &broker.CommitParams{Scope: q, Insert: []*broker.CommitInsert{{Job: first}, {Job: second, Optional: true}}})
	if err != nil || res.Jobs[0] == nil || res.Jobs[1] != nil || !errors.Is(res.Skipped[1], broker.ErrDuplicate) {
		s.t.Fatalf("Commit inserting one unique key twice, the second optional: %+v, %v; want the second skipped", res, err)
	}
	s.wantCounts(q, counts{broker.StatePending: 3})
}

// testCommitNotBefore: a commit is refused, changing nothing, while the
// broker's clock is before its NotBefore.
func testCommitNotBefore(s *bundle) {
	c := s.committer()
	q := "commit-notbefore"
	at := s.now().Add(300 * time.Millisecond)
	p := &broker.CommitParams{Scope: q, NotBefore: at, Docs: []*broker.DocWrite{doc("d", 0, 1)}, Insert: []*broker.CommitInsert{{Job: s.params(q)}}}
	_, err := c.Commit(s.ctx, p)
	var early *broker.TooEarlyError
	if !errors.As(err, &early) || !errors.Is(err, broker.ErrTooEarly) || !early.Now.Before(at) {
		s.t.Fatalf("Commit before NotBefore: %v; want a *TooEarlyError with the broker clock before %v", err, at)
	}
	s.wantDoc(q, "d", 0, 0)
	s.wantCounts(q, counts{})
	s.waitPast(at)
	res, err := c.Commit(s.ctx, p)
	if err != nil || res.Now.Before(at) {
		s.t.Fatalf("Commit after NotBefore: %+v, %v", res, err)
	}
	s.wantDoc(q, "d", 1, 1)
}

// testCommitCancelDelete: a commit cancels unfinished jobs (an active one
// loses its lease) and deletes finished ones whole; deleting an unfinished
// job fails the commit.
func testCommitCancelDelete(s *bundle) {
	c := s.committer()
	q := "commit-cancel"
	done := s.insert(q)
	s.insert(q)
	pending := s.insert(q, withKey("kp"))
	active := s.fetch(q, 2, longLease)
	var act *broker.Job
	for _, j := range active {
		if j.ID == done.ID {
			s.complete(j, nil)
		} else {
			act = j
		}
	}
	if act == nil {
		s.t.Fatalf("fetched %v, want the completed job and one more", ids(active))
	}
	_, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Delete: []string{done.ID, pending.ID}})
	wantErr(s.t, "Commit deleting a pending job", err, broker.ErrConflict)
	s.wantState(q, done.ID, broker.StateCompleted)
	if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Cancel: []string{act.ID, pending.ID, done.ID, "absent"}, Delete: []string{done.ID, "absent"}}); err != nil {
		s.t.Fatalf("Commit cancelling and deleting: %v", err)
	}
	s.wantState(q, act.ID, broker.StateCancelled)
	s.wantState(q, pending.ID, broker.StateCancelled)
	s.wantNotFound(q, done.ID)
	wantErr(s.t, "complete a job cancelled by a commit", s.completeErr(lease(act)), broker.ErrLeaseLost)
	s.insert(q, withKey("kp")) // the cancelled job freed its unique key
}

// testDocIndexList: DocList reads an index in (score, key) order, either
// way, by pages and score range, counts it whole, and forgets a document's
// entries when it is rewritten or deleted.
func testDocIndexList(s *bundle) {
	c := s.committer()
	q := "doc-index"
	var docs []*broker.DocWrite
	for i, score := range []int64{30, 10, 20, 10, 40} {
		docs = append(docs, doc(fmt.Sprintf("k%d", i), 0, i, broker.IndexEntry{Name: "by-score", Score: score}, broker.IndexEntry{Name: "all"}))
	}
	if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Docs: docs}); err != nil {
		s.t.Fatalf("Commit of indexed documents: %v", err)
	}
	list := func(p broker.DocListParams) ([]string, int) {
		s.t.Helper()
		if p.Scope == "" {
			p.Scope = q
		}
		p.Kind = "counter"
		res, err := c.DocList(s.ctx, &p)
		if err != nil {
			s.t.Fatalf("DocList(%+v): %v", p, err)
		}
		var keys []string
		for _, d := range res.Docs {
			keys = append(keys, d.Key)
		}
		return keys, res.Total
	}
	got, total := list(broker.DocListParams{Index: "by-score"})
	wantIDs(s.t, "index ascending", got, []string{"k1", "k3", "k2", "k0", "k4"})
	if total != 5 {
		s.t.Fatalf("DocList total %d, want 5", total)
	}
	got, _ = list(broker.DocListParams{Index: "by-score", Desc: true, Offset: 1, Limit: 3})
	wantIDs(s.t, "index descending, second page of 3", got, []string{"k0", "k2", "k3"})
	got, total = list(broker.DocListParams{Index: "by-score", Min: 15, Max: 30})
	wantIDs(s.t, "scores 15..30", got, []string{"k2", "k0"})
	if total != 2 {
		s.t.Fatalf("DocList total within 15..30: %d, want 2", total)
	}
	if _, err := c.Commit(s.ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{
		doc("k0", 1, 9, broker.IndexEntry{Name: "by-score", Score: 5}),
		{Kind: "counter", Key: "k1", Version: 1, Delete: true},
	}}); err != nil {
		s.t.Fatalf("Commit rewriting k0 and deleting k1: %v", err)
	}
	got, _ = list(broker.DocListParams{Index: "by-score"})
	wantIDs(s.t, "index after the rewrite and the delete", got, []string{"k0", "k3", "k2", "k4"})
	got, _ = list(broker.DocListParams{Index: "all"})
	wantIDs(s.t, "index k0 left", got, []string{"k2", "k3", "k4"})
	got, _ = list(broker.DocListParams{Index: "by-score", Scope: "other"})
	wantIDs(s.t, "another scope's index", got, nil)
}

// testCommitInvalidInput: bad input to Commit, DocGet and DocList is an
// error wrapping ErrInvalidJob, and writes nothing.
func testCommitInvalidInput(s *bundle) {
	c := s.committer()
	q := "commit-invalid"
	lp := broker.JobLeaseParams{Queue: q, ID: "j", Token: 1}
	for i, p := range []*broker.CommitParams{
		nil,
		{Scope: ""},
		{Scope: "bad{scope}"},
		{Scope: q, Insert: []*broker.CommitInsert{{Job: s.params("another-queue")}}},
		{Scope: q, Insert: []*broker.CommitInsert{{Job: s.params(q, withAttempts(0))}}},
		{Scope: q, Insert: []*broker.CommitInsert{nil}},
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: "another-queue", ID: "j"}}}},
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lp, Result: json.RawMessage(`{not json`)}}},
		{Scope: q, Fail: []*broker.JobFailParams{{JobLeaseParams: lp, RetryDelay: -time.Second}}},
		{Scope: q, Docs: []*broker.DocWrite{{Kind: "bad:kind", Key: "k", Body: json.RawMessage(`{}`)}}},
		{Scope: q, Docs: []*broker.DocWrite{{Kind: "counter", Key: "", Body: json.RawMessage(`{}`)}}},
		{Scope: q, Docs: []*broker.DocWrite{{Kind: "counter", Key: "k", Body: json.RawMessage(`{not json`)}}},
		{Scope: q, Docs: []*broker.DocWrite{{Kind: "counter", Key: "k", Delete: true}}},
		{Scope: q, Docs: []*broker.DocWrite{doc("k", 0, 1), doc("k", 0, 2)}},
		{Scope: q, Docs: []*broker.DocWrite{doc("k", 0, 1, broker.IndexEntry{Name: ""})}},
		{Scope: q, Cancel: []string{""}},
		{Scope: q, Reschedule: []*broker.JobReschedule{{ID: "j"}}},
		{Scope: q, Reschedule: []*broker.JobReschedule{nil}},
		// One job changed twice in one commit would end in two states.
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lp}}, Fail: []*broker.JobFailParams{{JobLeaseParams: lp}}},
		{Scope: q, Cancel: []string{"j"}, Reschedule: []*broker.JobReschedule{{ID: "j", RunAt: time.Now()}}},
		{Scope: q, Delete: []string{"j"}, Reschedule: []*broker.JobReschedule{{ID: "j", RunAt: time.Now()}}},
		{Scope: q, Complete: []*broker.JobCompleteParams{{JobLeaseParams: lp}}, Reschedule: []*broker.JobReschedule{{ID: "j", RunAt: time.Now()}}},
	} {
		if _, err := c.Commit(s.ctx, p); !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Fatalf("Commit of bad params %d: %v, want ErrInvalidJob", i, err)
		}
	}
	s.wantDoc(q, "k", 0, 0)
	s.wantCounts(q, counts{})
	_, err := c.DocGet(s.ctx, q, "bad:kind", "k")
	wantErr(s.t, "DocGet with a bad kind", err, broker.ErrInvalidJob)
	_, err = c.DocGet(s.ctx, "bad{scope}", "counter", "k")
	wantErr(s.t, "DocGet with a bad scope", err, broker.ErrInvalidJob)
	for i, p := range []*broker.DocListParams{nil, {Scope: q, Kind: "counter"}, {Scope: q, Kind: "counter", Index: "i", Limit: -1},
		{Scope: q, Kind: "counter", Index: "i", Limit: broker.MaxDocList + 1}, {Scope: "", Kind: "counter", Index: "i"}} {
		if _, err := c.DocList(s.ctx, p); !errors.Is(err, broker.ErrInvalidJob) {
			s.t.Fatalf("DocList of bad params %d: %v, want ErrInvalidJob", i, err)
		}
	}
}
