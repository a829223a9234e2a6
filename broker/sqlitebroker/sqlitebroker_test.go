package sqlitebroker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
	"github.com/aibos/worker/broker/sqlitebroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		b, err := sqlitebroker.Open(filepath.Join(t.TempDir(), "jobs.db"), sqlitebroker.Config{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// TestClockDrivesTime checks that every time the broker decides by comes
// from Config.Now: a job delayed by an hour becomes fetchable when the
// injected clock moves, and its lease expires by that clock too.
func TestClockDrivesTime(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_000)
	b, _ := openT(t, sqlitebroker.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	p := newJob("q", "later")
	p.Delay = time.Hour
	j, err := b.JobInsert(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != broker.StateScheduled || !j.RunAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("inserted = %s at %v, want scheduled at %v", j.State, j.RunAt, now.Add(time.Hour))
	}
	fetch := func() []*broker.Job {
		t.Helper()
		jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 10, LeaseDuration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	if got := fetch(); len(got) != 0 {
		t.Fatalf("fetched %d jobs before they were due", len(got))
	}
	now = now.Add(time.Hour)
	got := fetch()
	if len(got) != 1 || !got[0].LeaseUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("fetch when due = %+v, want the job leased until %v", got, now.Add(time.Minute))
	}
	now = now.Add(2 * time.Minute)
	res, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q"})
	if err != nil || res.Recovered != 1 {
		t.Fatalf("maintain after the lease expired = %+v, %v; want 1 recovered", res, err)
	}
}

// TestRecentCompletionsWindow checks that QueueStats.CompletedLastMinute
// counts by the broker's clock: a job completed a minute ago still counts,
// one completed longer ago no longer does.
func TestRecentCompletionsWindow(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_000)
	b, _ := openT(t, sqlitebroker.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	p := newJob("q", "done")
	p.TenantID = "t1"
	if _, err := b.JobInsert(ctx, p); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("fetch: %v %v", jobs, err)
	}
	if errs, err := b.JobComplete(ctx, completions(jobs)); err != nil || errs[0] != nil {
		t.Fatalf("complete: %v %v", errs, err)
	}
	for _, c := range []struct {
		after time.Duration
		want  int64
	}{{0, 1}, {broker.RecentWindow, 1}, {broker.RecentWindow + time.Millisecond, 0}} {
		now = jobs[0].StartedAt.Add(c.after)
		for _, scope := range []string{"", "t1"} {
			st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q", TenantID: scope})
			if err != nil || st.CompletedLastMinute != c.want || st.Completed != 1 {
				t.Fatalf("stats of tenant %q %v after the completion = %+v, %v; want 1 completed, %d in the last minute",
					scope, c.after, st, err, c.want)
			}
		}
	}
}

// TestBatchCompleteMixedTokens checks that a completion batch with a stale
// token in the middle completes the others and leaves the stale one alone,
// in a small batch (a statement per job) and in one large enough to be
// completed by a few statements (completeAll), where one job that cannot
// be completed so (a stale token, a job to delete, a job named twice, an
// unknown job) must not change what becomes of the others.
func TestBatchCompleteMixedTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		n                  int
		stale, del, others bool
	}{
		{"small", 3, true, true, true},
		{"all", 40, true, true, true},
		{"stale", 40, true, false, false},
		{"delete", 40, false, true, false},
		{"clean", 40, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) { batchCompleteMixed(t, tc.n, tc.stale, tc.del, tc.others) })
	}
}

// batchCompleteMixed completes n leased jobs in one batch: with stale the
// second under a stale token, with del the last one inserted to be deleted
// on completion, with others also an unknown job and the first job again.
func batchCompleteMixed(t *testing.T, n int, stale, del, others bool) {
	b, _ := openT(t, sqlitebroker.Config{})
	ctx := context.Background()
	ps := make([]*broker.JobInsertParams, n)
	for i := range ps {
		ps[i] = newJob("q", fmt.Sprint(i))
	}
	ps[n-1].DeleteOnComplete = del
	if _, err := b.JobInsertMany(ctx, ps); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: n, LeaseDuration: time.Minute})
	if err != nil || len(jobs) != n {
		t.Fatalf("fetch: %d jobs, %v", len(jobs), err)
	}
	cs := completions(jobs)
	if stale {
		cs[1].Token--
	}
	if others {
		cs = append(cs, &broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: "q", ID: "missing", Token: 1}})
		cs = append(cs, completions(jobs[:1])...) // completed above, in the same batch
	}
	errs, err := b.JobComplete(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]error, len(cs))
	if stale {
		want[1] = broker.ErrLeaseLost
	}
	if others {
		want[n], want[n+1] = broker.ErrNotFound, broker.ErrLeaseLost
	}
	for i, w := range want {
		if (w == nil) != (errs[i] == nil) || (w != nil && !errors.Is(errs[i], w)) {
			t.Errorf("errs[%d] = %v, want %v", i, errs[i], w)
		}
	}
	for i, j := range jobs {
		got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: j.ID})
		switch {
		case i == 1 && stale:
			if err != nil || got.State != broker.StateActive {
				t.Errorf("job completed with a stale token: %+v, %v", got, err)
			}
		case del && j.ID == ps[n-1].ID:
			if !errors.Is(err, broker.ErrNotFound) {
				t.Errorf("job to delete on completion: %+v, %v; want it deleted", got, err)
			}
		case err != nil || got.State != broker.StateCompleted || got.FinishedAt.IsZero():
			t.Errorf("job %s: %+v, %v; want it completed", j.ID, got, err)
		}
	}
}

// TestBulkDuplicateInLaterStatement: a batch is inserted several rows per
// statement; a collision with a stored job in a later statement is
// reported with that job's id, and nothing of the batch is stored, the
// statements before it included.
func TestBulkDuplicateInLaterStatement(t *testing.T) {
	t.Parallel()
	b, _ := openT(t, sqlitebroker.Config{})
	ctx := context.Background()
	if _, err := b.JobInsert(ctx, newJob("q", "job-150")); err != nil {
		t.Fatal(err)
	}
	ps := make([]*broker.JobInsertParams, 200)
	for i := range ps {
		ps[i] = newJob("q", fmt.Sprintf("job-%03d", i))
	}
	_, err := b.JobInsertMany(ctx, ps)
	var de *broker.DuplicateError
	if !errors.As(err, &de) || de.ExistingID != "job-150" {
		t.Fatalf("JobInsertMany colliding at index 150: %v; want a *DuplicateError naming job-150", err)
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q"})
	if err != nil || st.Pending != 1 {
		t.Fatalf("after the rejected batch: %+v, %v; want the one stored job", st, err)
	}
}

// TestBatchStatementsKeepEachJob checks the statements that insert,
// lease and complete many jobs at once (several rows each, with values
// the jobs of a batch share bound once) against what each job must be: a
// batch of 85 jobs (statements of 64, 16, 4 and 1 rows) with two types,
// some delayed and some with a TTL is stored as inserted; a fetch returns
// each job as it is stored; and one completion of the 73 leased jobs, the
// last with a result (statements of 64, 4 and 4, and one of its own),
// finishes each at the broker's time.
func TestBatchStatementsKeepEachJob(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_800_000_000_000)
	b, _ := openT(t, sqlitebroker.Config{Now: func() time.Time { return now }})
	ctx := context.Background()
	t0 := now
	ps := make([]*broker.JobInsertParams, 85)
	for i := range ps {
		ps[i] = newJob("q", fmt.Sprintf("job-%02d", i))
		ps[i].Type = fmt.Sprint("type-", i%2)
		ps[i].Data = fmt.Appendf(nil, `{"n":%d}`, i)
		if i%7 == 3 {
			ps[i].Delay = time.Minute
		}
		if i%11 == 5 {
			ps[i].TTL = time.Hour
		}
	}
	want := func(i int) (broker.State, time.Time, time.Time) {
		runAt, expires := t0, time.Time{}
		if ps[i].Delay > 0 {
			runAt = t0.Add(ps[i].Delay)
		}
		if ps[i].TTL > 0 {
			expires = runAt.Add(ps[i].TTL)
		}
		if runAt.After(t0) {
			return broker.StateScheduled, runAt, expires
		}
		return broker.StatePending, runAt, expires
	}
	inserted, err := b.JobInsertMany(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range inserted {
		st, runAt, expires := want(i)
		got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: ps[i].ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range []*broker.Job{j, got} {
			if j.ID != ps[i].ID || j.Queue != "q" || j.Type != ps[i].Type || string(j.Data) != string(ps[i].Data) ||
				j.State != st || !j.CreatedAt.Equal(t0) || !j.RunAt.Equal(runAt) || !j.ExpiresAt.Equal(expires) {
				t.Errorf("job %d: %s %s in %q, %s data %s, created %v, run at %v, expires %v; want %s %s, %s data %s, created %v, run at %v, expires %v",
					i, j.ID, j.State, j.Queue, j.Type, j.Data, j.CreatedAt, j.RunAt, j.ExpiresAt,
					ps[i].ID, st, ps[i].Type, ps[i].Data, t0, runAt, expires)
			}
		}
	}
	now = now.Add(time.Second)
	leased, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: len(ps), LeaseDuration: time.Minute, WorkerID: "w1"})
	if err != nil || len(leased) != 73 {
		t.Fatalf("fetch: %d jobs, %v; want the 73 due", len(leased), err)
	}
	for _, j := range leased {
		got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: j.ID})
		if err != nil {
			t.Fatal(err)
		}
		if j.Queue != got.Queue || j.State != got.State || j.Type != got.Type || string(j.Data) != string(got.Data) ||
			j.Attempt != got.Attempt || j.LeaseToken != got.LeaseToken || j.WorkerID != got.WorkerID ||
			!j.StartedAt.Equal(got.StartedAt) || !j.LeaseUntil.Equal(got.LeaseUntil) || !j.ExpiresAt.Equal(got.ExpiresAt) ||
			!j.StartedAt.Equal(now) || !j.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("fetched %+v\nstored  %+v\nwant both active for w1 from %v until %v", j, got, now, now.Add(time.Minute))
		}
	}
	now = now.Add(time.Second)
	cs := completions(leased)
	last := cs[len(cs)-1]
	last.Result = []byte(`{"ok":true}`) // completed on its own, after the others
	errs, err := b.JobComplete(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range leased {
		got, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: j.ID})
		if errs[i] != nil || err != nil || got.State != broker.StateCompleted || !got.FinishedAt.Equal(now) ||
			string(got.Result) != string(cs[i].Result) {
			t.Errorf("completed job %s: %v; stored %s finished at %v with result %s, %v; want completed at %v with result %s",
				j.ID, errs[i], got.State, got.FinishedAt, got.Result, err, now, cs[i].Result)
		}
	}
}
