package sqlitebroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// TestFairTurnNewcomer pins this store's turns (broker/fair.go): a tenant
// that becomes backlogged while another tenant's turn of
// broker.FairQuantum jobs is in progress is served next, not after that
// turn, and a tenant that keeps adding one job at a time, each fetched at
// once, gets one turn ahead of the others, not a turn per job.
func TestFairTurnNewcomer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const q, k = "turns", broker.FairQuantum
	b := openFair(t, sqlitebroker.Config{}, q)
	seq := 0
	insert := func(tenant string, n int) {
		t.Helper()
		ps := make([]*broker.JobInsertParams, n)
		for i := range ps {
			seq++
			ps[i] = newJob(q, fmt.Sprintf("%s-%03d", tenant, seq))
			ps[i].TenantID = tenant
		}
		if _, err := b.JobInsertMany(ctx, ps); err != nil {
			t.Fatalf("insert %d jobs of tenant %s: %v", n, tenant, err)
		}
	}
	fetch := func() string {
		t.Helper()
		got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 1, LeaseDuration: time.Hour})
		if err != nil || len(got) != 1 {
			t.Fatalf("fetch one job: %d jobs, %v", len(got), err)
		}
		return got[0].TenantID
	}
	insert("t-a", 10*k)
	// t-a's first turn, and the first job of its second: a turn is in
	// progress with k-1 jobs of t-a left in it.
	for i := range k + 1 {
		if tn := fetch(); tn != "t-a" {
			t.Fatalf("job %d came from tenant %s, want t-a (the only one)", i, tn)
		}
	}
	var got []string
	for range 3 * k {
		insert("t-b", 1)
		got = append(got, fetch())
	}
	if got[0] != "t-b" {
		t.Errorf("a newcomer's job came after %v; want it next, ahead of the turn in progress", got)
	}
	b2, run := 0, 0
	for _, tn := range got {
		if tn == "t-b" {
			b2++
			run++
			if run > k {
				t.Fatalf("tenant t-b, adding one job at a time, had more than a turn (%d jobs) in a row: %v", k, got)
			}
		} else {
			run = 0
		}
	}
	if b2 < k || b2 > 2*k {
		t.Errorf("tenant t-b had %d of %d jobs against a backlogged tenant of equal weight, want %d to %d (its turns): %v", b2, len(got), k, 2*k, got)
	}
}

// TestFairRequeuedJobFetched checks that a job of a fair queue that becomes
// pending outside an insert, and so waits for its tag, is fetched by the
// very next fetch, as in a queue without fairness: a scheduled job once it
// is due, and a dead job put back by JobRetry.
func TestFairRequeuedJobFetched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var ahead atomic.Int64 // how far the broker's clock is ahead of time.Now
	const q = "requeue"
	b := openFair(t, sqlitebroker.Config{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }}, q)
	p := newJob(q, "later")
	p.TenantID = "t-a"
	p.RunAt = time.Now().Add(time.Hour)
	if _, err := b.JobInsertMany(ctx, []*broker.JobInsertParams{p}); err != nil {
		t.Fatalf("insert a scheduled job: %v", err)
	}
	fetch := func(when string) []*broker.Job {
		t.Helper()
		got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 1, LeaseDuration: time.Hour})
		if err != nil {
			t.Fatalf("fetch %s: %v", when, err)
		}
		return got
	}
	if got := fetch("before the job is due"); len(got) != 0 {
		t.Fatalf("fetched %d jobs before the only one was due", len(got))
	}
	ahead.Store(int64(2 * time.Hour))
	got := fetch("once the job is due")
	if len(got) != 1 || got[0].ID != "later" {
		t.Fatalf("the first fetch after the job was due got %d jobs, want job later", len(got))
	}
	st, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: "later", Token: got[0].LeaseToken}, Error: "boom", Discard: true})
	if err != nil || st != broker.StateDead {
		t.Fatalf("fail the job for good: state %q, %v", st, err)
	}
	if _, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: q, ID: "later"}); err != nil {
		t.Fatalf("retry the dead job: %v", err)
	}
	if got := fetch("after JobRetry"); len(got) != 1 || got[0].ID != "later" {
		t.Fatalf("the first fetch after JobRetry got %d jobs, want job later", len(got))
	}
}

// TestFairClockRestartIsPerQueue checks that a fair queue running out of
// pending jobs restarts its own clock only: queue x:y's clock keeps its
// place when queue x (a name its own starts with) drains, so a newcomer
// to x:y still gets one turn ahead of a backlogged tenant, not two.
func TestFairClockRestartIsPerQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := openFair(t, sqlitebroker.Config{}, "x", "x:y")
	const k = broker.FairQuantum
	insert := func(q, tenant string, n int) {
		t.Helper()
		ps := make([]*broker.JobInsertParams, n)
		for i := range ps {
			ps[i] = newJob(q, fmt.Sprintf("%s-%03d", tenant, i))
			ps[i].TenantID = tenant
		}
		if _, err := b.JobInsertMany(ctx, ps); err != nil {
			t.Fatalf("insert %d jobs of tenant %s into queue %s: %v", n, tenant, q, err)
		}
	}
	fetch := func(q string, limit int) []*broker.Job {
		t.Helper()
		got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: limit, LeaseDuration: time.Hour})
		if err != nil {
			t.Fatalf("fetch from queue %s: %v", q, err)
		}
		return got
	}
	// Tenant t-a's turns in x:y are at tags 0, 1000, 2000 and 3000; with
	// two turns and one job fetched, x:y's clock is at 2000.
	insert("x:y", "t-a", 4*k)
	if got := fetch("x:y", 2*k+1); len(got) != 2*k+1 {
		t.Fatalf("fetched %d jobs of x:y, want %d", len(got), 2*k+1)
	}
	insert("x", "t-c", 1)
	if got := fetch("x", 2); len(got) != 1 {
		t.Fatalf("fetched %d jobs of x, want its only one", len(got))
	}
	insert("x:y", "t-b", 2*k)
	got := fetch("x:y", 2*k)
	var order []string
	for _, j := range got {
		order = append(order, j.TenantID)
	}
	if len(order) != 2*k || order[k-1] != "t-b" || order[k] != "t-a" {
		t.Errorf("x:y after x drained served %v; want one turn of t-b (%d jobs), then t-a", order, k)
	}
}

// TestFairTagRunSkipsTaggedJobs pins that tagging a run of jobs with one
// statement (tagRun) tags only the jobs waiting for a tag: tenant t-a's
// two delayed jobs become pending together and get one tag, and tenant
// t-b's jobs, added between them and tagged already, keep their tags, so
// t-b's second turn still comes after t-a's second job.
func TestFairTagRunSkipsTaggedJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	const q, k = "runs", broker.FairQuantum
	b := openFair(t, sqlitebroker.Config{Now: func() time.Time { return now }}, q)
	insert := func(id, tenant string, delay time.Duration) {
		t.Helper()
		p := newJob(q, id)
		p.TenantID, p.Delay = tenant, delay
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatalf("insert job %s: %v", id, err)
		}
	}
	insert("a-1", "t-a", time.Second)
	var want []string
	for i := range k + 1 { // t-b: a whole turn and the first job of the next
		id := fmt.Sprintf("b-%03d", i)
		insert(id, "t-b", 0)
		want = append(want, id)
	}
	insert("a-2", "t-a", time.Second)
	now = now.Add(time.Second)
	// Both brokers' model: t-a's jobs, pending now, join a turn at the
	// clock (0) with t-b's first turn and are served in seq order among
	// its jobs; t-b's job k has the next turn's tag and comes last.
	want = slices.Concat([]string{"a-1"}, want[:k], []string{"a-2"}, want[k:])
	wantFetchOrder(t, b, q, want, "")
}

// insertNumbered inserts n jobs a-000, a-001, ... made by job, in one
// JobInsertMany, and returns their ids in order.
func insertNumbered(t *testing.T, b *sqlitebroker.Broker, n int, job func(id string) *broker.JobInsertParams) []string {
	t.Helper()
	ps := make([]*broker.JobInsertParams, n)
	ids := make([]string, n)
	for i := range ps {
		ps[i] = job(fmt.Sprintf("a-%03d", i))
		ids[i] = ps[i].ID
	}
	if _, err := b.JobInsertMany(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestFairDuplicateTakesNoTurn pins that a pending job tagged as it is
// inserted takes its place in its tenant's turn only once stored: a
// duplicate, refused, leaves the place to the next job. Tenant t-a has
// broker.FairQuantum - 1 jobs of its first turn when a duplicate comes and
// is refused; its next job completes that turn, so it is served before
// tenant t-b's, which arrives after it at the same tag.
func TestFairDuplicateTakesNoTurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const q, k = "dup", broker.FairQuantum
	b := openFair(t, sqlitebroker.Config{}, q)
	job := func(id, tenant string) *broker.JobInsertParams {
		p := newJob(q, id)
		p.TenantID = tenant
		return p
	}
	want := insertNumbered(t, b, k-1, func(id string) *broker.JobInsertParams { return job(id, "t-a") })
	if _, err := b.JobInsert(ctx, job("a-000", "t-a")); !errors.Is(err, broker.ErrDuplicate) {
		t.Fatalf("insert a duplicate of a-000: %v, want ErrDuplicate", err)
	}
	for _, p := range []*broker.JobInsertParams{job("a-last", "t-a"), job("b-000", "t-b")} {
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p.ID)
	}
	wantFetchOrder(t, b, q, want, " (t-a's whole first turn, then t-b)")
}

// TestFairInsertAfterWaitingJob pins that jobs keep being tagged in seq
// order when a job of the queue waits for its tag (retried from dead, to
// be tagged by the next fetch) as another is inserted: tenant t-a's
// retried job x, inserted first, takes the last place of t-a's turn (its
// first place went to x's first attempt, the others to k-2 jobs added
// since) and is served first; t-a's job added after it starts the next
// turn and comes last.
func TestFairInsertAfterWaitingJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const q, k = "waiting", broker.FairQuantum
	b := openFair(t, sqlitebroker.Config{}, q)
	job := func(id string) *broker.JobInsertParams {
		p := newJob(q, id)
		p.TenantID, p.MaxAttempts = "t-a", 1
		return p
	}
	if _, err := b.JobInsert(ctx, job("x")); err != nil {
		t.Fatal(err)
	}
	got, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 1, LeaseDuration: time.Hour})
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch x: %d jobs, %v", len(got), err)
	}
	st, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: "x", Token: got[0].LeaseToken}, Error: "boom"})
	if err != nil || st != broker.StateDead {
		t.Fatalf("fail x: %s, %v; want dead", st, err)
	}
	want := append([]string{"x"}, insertNumbered(t, b, k-2, job)...)
	if _, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: q, ID: "x"}); err != nil {
		t.Fatalf("retry x: %v", err)
	}
	if _, err := b.JobInsert(ctx, job("a-next")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "a-next")
	wantFetchOrder(t, b, q, want, "")
}

// wantFetchOrder fetches len(want) jobs of queue q in one fetch and fails
// the test, saying why in note, unless their ids are want, in order.
func wantFetchOrder(t *testing.T, b broker.Broker, q string, want []string, note string) {
	t.Helper()
	got, err := b.JobFetch(context.Background(), &broker.JobFetchParams{Queue: q, Limit: len(want), LeaseDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, j := range got {
		ids[i] = j.ID
	}
	if !slices.Equal(ids, want) {
		t.Errorf("fetch order %v, want %v%s", ids, want, note)
	}
}

// openFair opens a store with opts, as openT does, and makes each of
// queues fair.
func openFair(t *testing.T, opts sqlitebroker.Config, queues ...string) *sqlitebroker.Broker {
	t.Helper()
	b, _ := openT(t, opts)
	for _, q := range queues {
		if err := b.QueueFairSet(context.Background(), &broker.FairPolicy{Queue: q, Fair: true}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestFairSetAfterPlainInserts turns a queue fair after inserts that found
// it plain, which the broker remembers so as not to read the queue's row
// again (fairInserts): a job inserted after QueueFairSet is tagged all the
// same, and fetched.
func TestFairSetAfterPlainInserts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const q = "turned"
	b, _ := openT(t, sqlitebroker.Config{})
	// The first insert registers the queue; the next ones find it plain.
	for _, id := range []string{"p1", "p2", "p3"} {
		if _, err := b.JobInsert(ctx, newJob(q, id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.QueueFairSet(ctx, &broker.FairPolicy{Queue: q, Fair: true}); err != nil {
		t.Fatal(err)
	}
	p := newJob(q, "a1")
	p.TenantID = "t-a"
	if _, err := b.JobInsert(ctx, p); err != nil {
		t.Fatal(err)
	}
	wantFetchOrder(t, b, q, []string{"p1", "p2", "p3", "a1"}, " (a job inserted after the queue turned fair must be fetched)")
}
