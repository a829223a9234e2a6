package redisbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
)

// These tests pin the Redis scripts directly; brokertest covers the whole
// contract.

func job(q, id string, opts ...func(*broker.JobInsertParams)) *broker.JobInsertParams {
	p := &broker.JobInsertParams{ID: id, Queue: q, Type: "test.job", MaxAttempts: 3}
	for _, o := range opts {
		o(p)
	}
	return p
}

func mustInsert(t *testing.T, b broker.Broker, ps ...*broker.JobInsertParams) {
	t.Helper()
	for _, p := range ps {
		if _, err := b.JobInsert(context.Background(), p); err != nil {
			t.Fatalf("insert %s: %v", p.ID, err)
		}
	}
}

func fetch(t *testing.T, b broker.Broker, q string, limit int, lease time.Duration) []*broker.Job {
	t.Helper()
	jobs, err := b.JobFetch(context.Background(), &broker.JobFetchParams{Queue: q, Limit: limit, LeaseDuration: lease, WorkerID: "w1"})
	if err != nil {
		t.Fatalf("fetch from %q: %v", q, err)
	}
	return jobs
}

func leaseOf(j *broker.Job) broker.JobLeaseParams {
	return broker.JobLeaseParams{Queue: j.Queue, ID: j.ID, Token: j.LeaseToken}
}

func idsOf(jobs []*broker.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func state(t *testing.T, b broker.Broker, q, id string) broker.State {
	t.Helper()
	j, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: q, ID: id})
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return j.State
}

// eventually polls cond every 10ms until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFetchOrdersByPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	prio := map[string]int{"a": 0, "b": 2, "c": 4, "d": 2, "e": 0, "f": broker.MinPriority, "g": broker.MaxPriority}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		mustInsert(t, b, job("q", id, func(p *broker.JobInsertParams) { p.Priority = prio[id] }))
	}
	var got []string
	for _, limit := range []int{2, 1, 10} {
		got = append(got, idsOf(fetch(t, b, "q", limit, time.Minute))...)
	}
	if want := []string{"f", "b", "d", "a", "e", "c", "g"}; !slices.Equal(got, want) {
		t.Fatalf("fetch order = %v, want %v", got, want)
	}
}

func TestDelayedJobIsFetchedOnlyWhenDue(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	j, err := b.JobInsert(context.Background(), job("q", "late", func(p *broker.JobInsertParams) { p.Delay = 300 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	if j.State != broker.StateScheduled || !j.RunAt.After(j.CreatedAt) {
		t.Fatalf("inserted delayed job: state %s, run at %v, created %v", j.State, j.RunAt, j.CreatedAt)
	}
	if got := fetch(t, b, "q", 1, time.Minute); len(got) != 0 {
		t.Fatalf("fetched %v before it was due", idsOf(got))
	}
	var fetched []*broker.Job
	eventually(t, "the delayed job", func() bool { fetched = fetch(t, b, "q", 1, time.Minute); return len(fetched) == 1 })
	if fetched[0].StartedAt.Before(j.RunAt) {
		t.Fatalf("job started at %v, before it was due at %v", fetched[0].StartedAt, j.RunAt)
	}
}

func TestStaleTokenChangesNothing(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	mustInsert(t, b, job("q", "j"))
	first := fetch(t, b, "q", 1, 20*time.Millisecond)[0]
	eventually(t, "the lease to be recovered", func() bool {
		r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q"})
		return err == nil && r.Recovered == 1
	})
	second := fetch(t, b, "q", 1, time.Minute)[0]
	if second.LeaseToken <= first.LeaseToken || second.Attempt != 2 {
		t.Fatalf("second lease: token %d (first %d), attempt %d", second.LeaseToken, first.LeaseToken, second.Attempt)
	}
	stale := leaseOf(first)
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: stale}})
	if err != nil || !errors.Is(errs[0], broker.ErrLeaseLost) {
		t.Fatalf("complete with stale token: %v, %v; want lease lost", errs, err)
	}
	if errs, _ := b.JobLeaseExtend(ctx, []*broker.JobLeaseParams{&stale}, time.Minute); !errors.Is(errs[0], broker.ErrLeaseLost) {
		t.Fatalf("extend with stale token: %v", errs)
	}
	if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: stale, Error: "x"}); !errors.Is(err, broker.ErrLeaseLost) {
		t.Fatalf("fail with stale token: %v", err)
	}
	if err := b.JobRelease(ctx, &stale); !errors.Is(err, broker.ErrLeaseLost) {
		t.Fatalf("release with stale token: %v", err)
	}
	if err := b.JobProgress(ctx, &stale, json.RawMessage(`1`)); !errors.Is(err, broker.ErrLeaseLost) {
		t.Fatalf("progress with stale token: %v", err)
	}
	now, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if now.State != broker.StateActive || now.LeaseToken != second.LeaseToken || now.Progress != nil || now.LastError != "" {
		t.Fatalf("stale calls changed the job: %+v", now)
	}
	live := leaseOf(second)
	errs, err = b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: live, Result: json.RawMessage(`{"ok":true}`)}})
	if err != nil || errs[0] != nil {
		t.Fatalf("complete with live token: %v, %v", errs, err)
	}
	done, _ := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "j"})
	if done.State != broker.StateCompleted || string(done.Result) != `{"ok":true}` {
		t.Fatalf("completed job: state %s, result %s", done.State, done.Result)
	}
}

func TestCompleteBatchSpansQueues(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	mustInsert(t, b, job("q1", "a"), job("q2", "b"), job("q1", "c"))
	a := fetch(t, b, "q1", 1, time.Minute)[0]
	bj := fetch(t, b, "q2", 1, time.Minute)[0]
	c := fetch(t, b, "q1", 1, time.Minute)[0]
	staleC := leaseOf(c)
	staleC.Token--
	ps := []*broker.JobCompleteParams{
		{JobLeaseParams: leaseOf(a)},
		{JobLeaseParams: leaseOf(bj)},
		{JobLeaseParams: staleC},
		{JobLeaseParams: broker.JobLeaseParams{Queue: "q2", ID: "missing", Token: 1}},
	}
	errs, err := b.JobComplete(context.Background(), ps)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], broker.ErrLeaseLost) || !errors.Is(errs[3], broker.ErrNotFound) {
		t.Fatalf("per-job errors = %v", errs)
	}
	if state(t, b, "q1", "a") != broker.StateCompleted || state(t, b, "q2", "b") != broker.StateCompleted || state(t, b, "q1", "c") != broker.StateActive {
		t.Fatal("batch completed the wrong jobs")
	}
}

func TestInsertManyIsAllOrNone(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	mustInsert(t, b, job("q", "x", func(p *broker.JobInsertParams) { p.UniqueKey = "k" }))
	key := func(k string) func(*broker.JobInsertParams) {
		return func(p *broker.JobInsertParams) { p.UniqueKey = k }
	}
	tests := []struct {
		name         string
		batch        []*broker.JobInsertParams
		existing, uk string
	}{
		{"id exists", []*broker.JobInsertParams{job("q", "n1"), job("q", "x")}, "x", ""},
		{"unique key held", []*broker.JobInsertParams{job("q", "n1"), job("q", "n2", key("k"))}, "x", "k"},
		{"id twice in batch", []*broker.JobInsertParams{job("q", "n1"), job("q", "n1")}, "n1", ""},
		{"key twice in batch", []*broker.JobInsertParams{job("q", "n1", key("z")), job("q", "n2", key("z"))}, "n1", "z"},
	}
	for _, tt := range tests {
		_, err := b.JobInsertMany(ctx, tt.batch)
		var dup *broker.DuplicateError
		if !errors.As(err, &dup) || dup.ExistingID != tt.existing || dup.UniqueKey != tt.uk {
			t.Errorf("%s: err = %v, want duplicate of %q key %q", tt.name, err, tt.existing, tt.uk)
		}
		for _, p := range tt.batch {
			if p.ID == "x" {
				continue
			}
			if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: p.ID}); !errors.Is(err, broker.ErrNotFound) {
				t.Errorf("%s: job %s was written: %v", tt.name, p.ID, err)
			}
		}
	}
	batch := make([]*broker.JobInsertParams, 1000)
	for i := range batch {
		batch[i] = job("q", fmt.Sprintf("bulk-%d", i))
	}
	jobs, err := b.JobInsertMany(ctx, batch)
	if err != nil || len(jobs) != 1000 {
		t.Fatalf("insert 1000: %d jobs, %v", len(jobs), err)
	}
	st, _ := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q"})
	if st.Pending != 1001 {
		t.Fatalf("pending = %d, want 1001", st.Pending)
	}
}

func TestUniqueKeyReleasedWhenFinished(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	key := func(p *broker.JobInsertParams) { p.UniqueKey = "invoice-7" }
	mustInsert(t, b, job("q", "a", key))
	_, err := b.JobInsert(ctx, job("q", "b", key))
	var dup *broker.DuplicateError
	if !errors.As(err, &dup) || dup.ExistingID != "a" || dup.UniqueKey != "invoice-7" {
		t.Fatalf("second insert: %v, want duplicate of a", err)
	}
	// Another queue has its own keys.
	mustInsert(t, b, job("other", "b", key))
	a := fetch(t, b, "q", 1, time.Minute)[0]
	if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(a)}}); err != nil || errs[0] != nil {
		t.Fatalf("complete: %v %v", errs, err)
	}
	mustInsert(t, b, job("q", "b", key))
	if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "q", ID: "b"}); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, b, job("q", "c", key))
	// Retrying b would take the key c holds.
	if _, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: "q", ID: "b"}); !errors.As(err, &dup) || dup.ExistingID != "c" {
		t.Fatalf("retry b while c holds the key: %v", err)
	}
}

func TestQueueFullCountsScheduledAndPending(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	limit := func(p *broker.JobInsertParams) { p.MaxQueueLength = 3 }
	mustInsert(t, b, job("q", "a", limit), job("q", "b", limit, func(p *broker.JobInsertParams) { p.Delay = time.Hour }))
	_, err := b.JobInsertMany(ctx, []*broker.JobInsertParams{job("q", "c", limit), job("q", "d", limit)})
	if !errors.Is(err, broker.ErrQueueFull) {
		t.Fatalf("batch past the limit: %v, want queue full", err)
	}
	if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "c"}); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("job c of a rejected batch exists: %v", err)
	}
	mustInsert(t, b, job("q", "c", limit))
	if _, err := b.JobInsert(ctx, job("q", "d", limit)); !errors.Is(err, broker.ErrQueueFull) {
		t.Fatalf("fourth insert: %v, want queue full", err)
	}
	fetch(t, b, "q", 1, time.Minute) // active jobs do not count
	mustInsert(t, b, job("q", "d", limit))
}

func TestTTLExpiresUnstartedJobs(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	ttl := func(p *broker.JobInsertParams) { p.TTL = 30 * time.Millisecond; p.UniqueKey = "u" }
	j, err := b.JobInsert(ctx, job("q", "a", ttl))
	if err != nil {
		t.Fatal(err)
	}
	if !j.ExpiresAt.Equal(j.RunAt.Add(30 * time.Millisecond)) {
		t.Fatalf("ExpiresAt = %v, want RunAt %v + 30ms", j.ExpiresAt, j.RunAt)
	}
	jb, err := b.JobInsert(ctx, job("q", "b", func(p *broker.JobInsertParams) { p.TTL = 30 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	client := redistest.Client(t)
	eventually(t, "redis time past both TTLs", func() bool {
		now, err := client.Time(ctx).Result()
		return err == nil && now.After(j.ExpiresAt) && now.After(jb.ExpiresAt)
	})
	if got := fetch(t, b, "q", 10, time.Minute); len(got) != 0 {
		t.Fatalf("fetched expired jobs %v", idsOf(got))
	}
	if s := state(t, b, "q", "a"); s != broker.StateExpired {
		t.Fatalf("state = %s, want expired", s)
	}
	mustInsert(t, b, job("q", "c", func(p *broker.JobInsertParams) { p.UniqueKey = "u" })) // key released
	// Maintenance expires them without a fetch too.
	mustInsert(t, b, job("q2", "d", ttl))
	eventually(t, "maintenance to expire d", func() bool {
		r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q2"})
		return err == nil && r.Expired == 1
	})
	if s := state(t, b, "q2", "d"); s != broker.StateExpired {
		t.Fatalf("state = %s, want expired", s)
	}
}

func TestCancelActiveRevokesLease(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	mustInsert(t, b, job("q", "a"))
	a := fetch(t, b, "q", 1, time.Minute)[0]
	c, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "q", ID: "a"})
	if err != nil || c.State != broker.StateCancelled || c.FinishedAt.IsZero() {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	lp := leaseOf(a)
	if errs, _ := b.JobLeaseExtend(ctx, []*broker.JobLeaseParams{&lp}, time.Minute); !errors.Is(errs[0], broker.ErrLeaseLost) {
		t.Fatalf("extend after cancel: %v", errs)
	}
	if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "q", ID: "a"}); !errors.Is(err, broker.ErrWrongState) {
		t.Fatalf("second cancel: %v, want wrong state", err)
	}
	st, _ := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q"})
	if st.Active != 0 || st.Cancelled != 1 {
		t.Fatalf("stats after cancel: %+v", st)
	}
}

func TestMaintainRecoversAndRemovesWhole(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	client := redistest.Client(t)
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	mustInsert(t, b, job("q", "once", func(p *broker.JobInsertParams) { p.MaxAttempts = 1; p.UniqueKey = "k1" }))
	fetch(t, b, "q", 1, 10*time.Millisecond)
	eventually(t, "the lease to expire", func() bool {
		r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q"})
		return err == nil && r.Dead == 1
	})
	dead, _ := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "once"})
	if dead.State != broker.StateDead || dead.LastError != "lease expired" {
		t.Fatalf("job after lease expiry: state %s, error %q", dead.State, dead.LastError)
	}
	for i := range 5 {
		mustInsert(t, b, job("q", fmt.Sprintf("c%d", i), func(p *broker.JobInsertParams) { p.UniqueKey = fmt.Sprintf("u%d", i) }))
	}
	for _, j := range fetch(t, b, "q", 5, time.Minute) {
		if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(j)}}); err != nil || errs[0] != nil {
			t.Fatalf("complete %s: %v %v", j.ID, errs, err)
		}
	}
	r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q", CompletedMaxCount: 2, Limit: 2})
	if err != nil || r.Removed != 2 {
		t.Fatalf("maintain with limit 2: %+v, %v; want 2 removed", r, err)
	}
	// DeadMaxAge rounds up to a millisecond: the dead job must be older
	// than that on Redis's clock, which a fast run may not have taken.
	eventually(t, "the dead job to be older than a millisecond", func() bool {
		now, err := client.Time(ctx).Result()
		return err == nil && now.Sub(dead.FinishedAt) > 2*time.Millisecond
	})
	r, err = b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q", CompletedMaxCount: 2, DeadMaxAge: time.Nanosecond})
	if err != nil || r.Removed != 2 {
		t.Fatalf("maintain: %+v, %v; want 1 completed and 1 dead removed", r, err)
	}
	list, err := b.JobList(ctx, &broker.JobListParams{Queue: "q", State: broker.StateCompleted})
	if err != nil || !slices.Equal(idsOf(list.Jobs), []string{"c4", "c3"}) {
		t.Fatalf("completed jobs kept: %v, %v; want the newest two", idsOf(list.Jobs), err)
	}
	// Nothing of the removed jobs is left in Redis: only the two kept job
	// hashes, the state index and the counters. A completion writes no
	// attempt history list: the kept jobs' hashes hold their one attempt.
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var jobKeys []string
	for _, k := range keys {
		if strings.Contains(k, ":j:") || strings.Contains(k, ":u:") || strings.Contains(k, ":h:") ||
			strings.HasSuffix(k, ":lease") || strings.HasSuffix(k, ":done") {
			jobKeys = append(jobKeys, strings.TrimPrefix(k, prefix))
		}
	}
	slices.Sort(jobKeys)
	if want := []string{":{q}:j:c3", ":{q}:j:c4"}; !slices.Equal(jobKeys, want) {
		t.Fatalf("job keys left = %v, want %v", jobKeys, want)
	}
}

func TestClosedBrokerReturnsErrClosed(t *testing.T) {
	t.Parallel()
	b, err := redisbroker.Open(redistest.URL(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := b.JobInsert(ctx, job("q", "a")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("insert after close: %v", err)
	}
	if _, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Second}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("fetch after close: %v", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("ping after close: %v", err)
	}
}

func TestPausedQueueFetchesNothing(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	mustInsert(t, b, job("q", "a"))
	if err := b.QueuePause(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Second}); !errors.Is(err, broker.ErrQueuePaused) {
		t.Fatalf("fetch from paused queue: %v", err)
	}
	if err := b.QueueResume(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if got := fetch(t, b, "q", 1, time.Minute); len(got) != 1 {
		t.Fatalf("fetch after resume: %v", idsOf(got))
	}
	names, err := b.QueueList(ctx)
	if err != nil || !slices.Equal(names, []string{"q"}) {
		t.Fatalf("queues = %v, %v", names, err)
	}
}

func TestCloseLeavesCallersClientOpen(t *testing.T) {
	t.Parallel()
	client := redistest.Client(t)
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the caller's client was closed with the broker: %v", err)
	}
	if _, err := redisbroker.New(client, redisbroker.Config{Prefix: "bad{prefix}"}); err == nil {
		t.Fatal("a prefix with braces was accepted")
	}
}

// A batch mixing plain jobs with jobs that carry options: each keeps its
// own fields, state and index entries, and reads back whole.
func TestInsertBatchMixesPlainJobsAndOptions(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	ctx := context.Background()
	full := func(p *broker.JobInsertParams) {
		p.Data = json.RawMessage(`{"a|b":"x|y"}`)
		p.TenantID, p.CompanyID = "ten|ant", "co"
		p.Headers = map[string]string{"trace": "1|2"}
		p.Timeout = 1500 * time.Millisecond
		p.Priority, p.MaxAttempts = 7, 9
	}
	ps := []*broker.JobInsertParams{
		job("mix", "plain", full),
		job("mix", "delayed", func(p *broker.JobInsertParams) { p.Delay = time.Hour }),
		job("mix", "unique", func(p *broker.JobInsertParams) { p.UniqueKey = "k|1" }),
		job("mix", "ttl", func(p *broker.JobInsertParams) { p.TTL = time.Hour }),
		job("mix", "past", func(p *broker.JobInsertParams) { p.RunAt = time.Now().Add(-time.Hour) }),
		job("mix", "limit", func(p *broker.JobInsertParams) { p.MaxQueueLength = 100; p.Priority = 1 }),
	}
	jobs, err := b.JobInsertMany(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]broker.State{"plain": broker.StatePending, "delayed": broker.StateScheduled,
		"unique": broker.StatePending, "ttl": broker.StatePending, "past": broker.StatePending, "limit": broker.StatePending}
	for i, j := range jobs {
		if j.ID != ps[i].ID || j.State != want[j.ID] {
			t.Fatalf("job %d = %s %s, want %s %s", i, j.ID, j.State, ps[i].ID, want[ps[i].ID])
		}
		got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "mix", ID: j.ID})
		if err != nil {
			t.Fatal(err)
		}
		if got.State != j.State || !got.RunAt.Equal(j.RunAt) || !got.CreatedAt.Equal(j.CreatedAt) ||
			!got.ExpiresAt.Equal(j.ExpiresAt) || got.UniqueKey != ps[i].UniqueKey || got.Priority != broker.PriorityOrDefault(ps[i].Priority) {
			t.Fatalf("%s reads back as %+v, inserted as %+v", j.ID, got, j)
		}
	}
	if jobs[1].RunAt.Sub(jobs[1].CreatedAt) < time.Hour {
		t.Fatalf("delayed job runs at %v, created %v", jobs[1].RunAt, jobs[1].CreatedAt)
	}
	if !jobs[3].ExpiresAt.Equal(jobs[3].RunAt.Add(time.Hour)) {
		t.Fatalf("ttl job expires at %v, runs at %v", jobs[3].ExpiresAt, jobs[3].RunAt)
	}
	got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "mix", ID: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != `{"a|b":"x|y"}` || got.TenantID != "ten|ant" || got.CompanyID != "co" ||
		got.Headers["trace"] != "1|2" || got.Timeout != 1500*time.Millisecond || got.MaxAttempts != 9 ||
		got.Attempt != 0 || got.Type != "test.job" {
		t.Fatalf("plain job reads back as %+v", got)
	}
	// Priority first, then FIFO; the scheduled job is not due.
	var order []string
	fetched := map[string]*broker.Job{}
	for _, j := range fetch(t, b, "mix", 10, time.Minute) {
		fetched[j.ID] = j
		order = append(order, j.ID)
		if j.State != broker.StateActive || j.Attempt != 1 {
			t.Fatalf("fetched %s as %s attempt %d", j.ID, j.State, j.Attempt)
		}
		if j.ID == "plain" && (string(j.Data) != `{"a|b":"x|y"}` || j.Priority != 7 || j.MaxAttempts != 9 || !j.CreatedAt.Equal(jobs[0].CreatedAt)) {
			t.Fatalf("fetched plain job as %+v", j)
		}
	}
	if strings.Join(order, ",") != "limit,unique,ttl,past,plain" {
		t.Fatalf("fetch order %v, want limit,unique,ttl,past,plain", order)
	}
	// Jobs handed back keep the priority their bodies hold (fetch leaves it
	// out of the state hash), and a failed one its max attempts.
	for _, id := range []string{"plain", "limit"} {
		if err := b.JobRelease(ctx, &broker.JobLeaseParams{Queue: "mix", ID: id, Token: fetched[id].LeaseToken}); err != nil {
			t.Fatalf("release %s: %v", id, err)
		}
	}
	mustInsert(t, b, job("mix", "late"))
	order = order[:0]
	for _, j := range fetch(t, b, "mix", 10, time.Minute) {
		order = append(order, j.ID)
		fetched[j.ID] = j
		if j.ID == "plain" && (j.Priority != 7 || j.MaxAttempts != 9 || j.Attempt != 1) {
			t.Fatalf("plain job fetched again as %+v", j)
		}
	}
	if strings.Join(order, ",") != "limit,late,plain" {
		t.Fatalf("fetch order after hand-back %v, want limit,late,plain", order)
	}
	for attempt := 1; attempt < 9; attempt++ {
		st, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: broker.JobLeaseParams{Queue: "mix", ID: "plain", Token: fetched["plain"].LeaseToken}, Error: "boom"})
		if err != nil || st != broker.StateScheduled {
			t.Fatalf("fail attempt %d of 9: %s, %v; want scheduled", attempt, st, err)
		}
		fetched["plain"] = nil
		eventually(t, "the retry to be due", func() bool {
			for _, j := range fetch(t, b, "mix", 10, time.Minute) {
				fetched[j.ID] = j
			}
			return fetched["plain"] != nil
		})
	}
	if st, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: broker.JobLeaseParams{Queue: "mix", ID: "plain", Token: fetched["plain"].LeaseToken}, Error: "boom"}); err != nil || st != broker.StateDead {
		t.Fatalf("fail attempt 9 of 9: %s, %v; want dead", st, err)
	}
	// A batch whose second job has its own, smaller limit is refused whole.
	_, err = b.JobInsertMany(ctx, []*broker.JobInsertParams{job("mix", "n1"), job("mix", "n2", func(p *broker.JobInsertParams) { p.MaxQueueLength = 1 })})
	if !errors.Is(err, broker.ErrQueueFull) || !strings.Contains(err.Error(), "index 1") {
		t.Fatalf("insert over a per-job limit: %v, want ErrQueueFull at index 1", err)
	}
}

// The scripts derive the body hash's name from the job hash prefix
// (lib.lua body_key); it must be the name keys.go gives it, and a plain job
// must have no state hash until it is fetched.
func TestBodyHashIsTheOneKeysNames(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	mustInsert(t, b, job("bq", "j1"))
	body, err := client.HGet(ctx, redisbroker.BodyKey(prefix, "bq"), "j1").Result()
	if err != nil || !strings.Contains(body, "test.job") {
		t.Fatalf("body of j1 in %s = %q, %v", redisbroker.BodyKey(prefix, "bq"), body, err)
	}
	stateKey := prefix + ":{bq}:j:j1"
	if n, err := client.Exists(ctx, stateKey).Result(); err != nil || n != 0 {
		t.Fatalf("a plain pending job has a state hash: EXISTS %s = %d, %v", stateKey, n, err)
	}
	f := fetch(t, b, "bq", 1, time.Minute)[0]
	if n, err := client.Exists(ctx, stateKey).Result(); err != nil || n != 0 {
		t.Fatalf("a plain job fetched has a state hash: EXISTS %s = %d, %v", stateKey, n, err)
	}
	entry, err := client.HGet(ctx, redisbroker.LeaseKey(prefix, "bq"), "j1").Result()
	if err != nil || !strings.HasPrefix(entry, strconv.FormatInt(f.LeaseToken, 10)+"|") {
		t.Fatalf("lease entry of the fetched job = %q, %v; want one starting with its token %d", entry, err, f.LeaseToken)
	}
	if j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "bq", ID: "j1"}); err != nil || j.State != broker.StateActive ||
		j.Attempt != 1 || j.LeaseToken != f.LeaseToken || !j.StartedAt.Equal(f.StartedAt) || !j.LeaseUntil.Equal(f.LeaseUntil) {
		t.Fatalf("get the fetched job = %+v, %v; want it active under lease %d from %v until %v", j, err, f.LeaseToken, f.StartedAt, f.LeaseUntil)
	}
	if err := b.JobDelete(ctx, &broker.JobDeleteParams{Queue: "bq", ID: "j1"}); !errors.Is(err, broker.ErrWrongState) {
		t.Fatalf("delete active job: %v", err)
	}
}

// Removing jobs leaves nothing behind: retention and JobDelete take the
// body entry and the state hash with the job, for jobs with and without a
// state hash.
func TestRemovedJobsLeaveNoKeys(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	ps := make([]*broker.JobInsertParams, 0, 1200)
	for i := range 1200 {
		ps = append(ps, job("gone", fmt.Sprintf("j%d", i), func(p *broker.JobInsertParams) {
			if i%3 == 0 {
				p.UniqueKey = fmt.Sprintf("k%d", i) // gets a state hash at insert
			}
		}))
	}
	if _, err := b.JobInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	// Delete two pending jobs (one with only a body), complete the rest.
	for _, id := range []string{"j0", "j1"} {
		if err := b.JobDelete(ctx, &broker.JobDeleteParams{Queue: "gone", ID: id}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	done := 0
	for done < 1198 {
		jobs := fetch(t, b, "gone", 500, time.Minute)
		cps := make([]*broker.JobCompleteParams, len(jobs))
		for i, j := range jobs {
			cps[i] = &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "gone", ID: j.ID, Token: j.LeaseToken}}
		}
		errs, err := b.JobComplete(ctx, cps)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			if e != nil {
				t.Fatalf("complete %s: %v", cps[i].ID, e)
			}
		}
		done += len(jobs)
	}
	// More than one maintenance step's worth: removal goes in chunks.
	removed := 0
	for removed < 1198 {
		r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "gone", CompletedMaxAge: time.Nanosecond, Limit: 700})
		if err != nil {
			t.Fatal(err)
		}
		if r.Removed == 0 {
			t.Fatalf("maintenance removed nothing with %d of 1198 removed", removed)
		}
		removed += r.Removed
	}
	if n, err := client.HLen(ctx, redisbroker.BodyKey(prefix, "gone")).Result(); err != nil || n != 0 {
		t.Fatalf("body hash holds %d entries after every job was removed (%v)", n, err)
	}
	keys, err := client.Keys(ctx, prefix+":{gone}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, ":j:") || strings.Contains(k, ":u:") || strings.Contains(k, ":h:") ||
			strings.HasSuffix(k, ":lease") || strings.HasSuffix(k, ":done") {
			t.Fatalf("key %s outlived its job (left: %v)", k, keys)
		}
	}
}

// A job's attempt history is a list under the queue's hash tag holding
// compact entries, and JobDelete, or a completion that removes the job,
// removes it with the job.
func TestAttemptHistoryDeletedWithJob(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	mustInsert(t, b, job("q", "h1"))
	f := fetch(t, b, "q", 1, time.Minute)[0]
	if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: leaseOf(f), Error: "boom", RetryDelay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	hist := prefix + ":{q}:h:h1"
	entries, err := client.LRange(ctx, hist, 0, -1).Result()
	want := fmt.Sprintf(`[1,"w1",%d,`, f.StartedAt.UnixMilli())
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0], want) || !strings.HasSuffix(entries[0], `,"retry_scheduled","boom"]`) {
		t.Fatalf("history list %s = %q, %v; want one entry %s…,\"retry_scheduled\",\"boom\"]", hist, entries, err, want)
	}
	if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: "q", ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.JobDelete(ctx, &broker.JobDeleteParams{Queue: "q", ID: "h1"}); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, hist).Result(); err != nil || n != 0 {
		t.Fatalf("history list of a deleted job: exists %d, %v; want gone", n, err)
	}

	// A job removed as it completes takes its earlier attempts along.
	mustInsert(t, b, job("q", "h2", func(p *broker.JobInsertParams) { p.DeleteOnComplete = true }))
	f = fetch(t, b, "q", 1, time.Minute)[0]
	if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: leaseOf(f), Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	var again []*broker.Job
	eventually(t, "the retry to be fetchable", func() bool {
		again = fetch(t, b, "q", 1, time.Minute)
		return len(again) == 1
	})
	if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(again[0])}}); err != nil || errs[0] != nil {
		t.Fatalf("complete: %v, %v", errs, err)
	}
	if n, err := client.Exists(ctx, prefix+":{q}:h:h2").Result(); err != nil || n != 0 {
		t.Fatalf("history list of a job removed on completion: exists %d, %v; want gone", n, err)
	}
}
