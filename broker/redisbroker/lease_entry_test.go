package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// leasedPlainJob runs t in parallel on a broker of its own, holding one
// plain job (no state hash, lib.lua) of queue "q", id, fetched.
func leasedPlainJob(t *testing.T, id string) (*redisbroker.Broker, *broker.Job) {
	t.Helper()
	t.Parallel()
	b, _, _ := newBrokerKeys(t)
	mustInsert(t, b, job("q", id))
	return b, fetch(t, b, "q", 1, time.Minute)[0]
}

// A plain job acknowledged twice in one batch completes once: the second
// acknowledgement finds its lease gone, as it would in a later batch, and
// the job is counted and listed once.
func TestPlainJobCompletedTwiceInOneBatch(t *testing.T) {
	b, f := leasedPlainJob(t, "twice")
	ctx := context.Background()
	ack := &broker.JobCompleteParams{JobLeaseParams: leaseOf(f)}
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{ack, ack})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], broker.ErrLeaseLost) {
		t.Fatalf("complete twice in one batch: %v, %v; want ok then %v", errs, err, broker.ErrLeaseLost)
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "q"})
	if err != nil || st.Completed != 1 || st.Active != 0 {
		t.Fatalf("stats after one completion: %+v, %v; want 1 completed, 0 active", st, err)
	}
	list, err := b.JobList(ctx, &broker.JobListParams{Queue: "q", State: broker.StateCompleted})
	if err != nil || len(list.Jobs) != 1 {
		t.Fatalf("completed jobs listed: %v, %v; want twice once", idsOf(list.Jobs), err)
	}
}

// The active zset and the lease hash of a busy queue are written as tables
// (lib.lua PIN): the name that makes them so is never left in them, so
// counts, listings and lease recovery see only jobs.
func TestPinNeverLeftBehind(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	for i := range 60 {
		mustInsert(t, b, job("pin", fmt.Sprintf("j%d", i), func(p *broker.JobInsertParams) { p.TenantID = "t1" }))
	}
	jobs := fetch(t, b, "pin", 40, time.Minute)
	for _, key := range []string{prefix + ":{pin}:active", prefix + ":{pin}:t:active:t1"} {
		zsetHoldsJobsOnly(t, client, key, 40, "fetched")
	}
	fields, err := client.HKeys(ctx, redisbroker.LeaseKey(prefix, "pin")).Result()
	if err != nil || len(fields) != 40 {
		t.Fatalf("lease hash holds %d fields (%v); want the 40 jobs fetched", len(fields), err)
	}
	st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: "pin"})
	if err != nil || st.Active != 40 || st.Pending != 20 {
		t.Fatalf("stats: %+v, %v; want 40 active, 20 pending", st, err)
	}
	acks := make([]*broker.JobCompleteParams, len(jobs))
	for i, j := range jobs {
		acks[i] = &broker.JobCompleteParams{JobLeaseParams: leaseOf(j)}
	}
	if _, err := b.JobComplete(ctx, acks); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{prefix + ":{pin}:active", prefix + ":{pin}:t:active:t1", redisbroker.LeaseKey(prefix, "pin")} {
		if n, err := client.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("%s outlived the last active job: EXISTS = %d, %v", key, n, err)
		}
	}
}

// A plain job's lease is fenced as a state hash's is: an acknowledgement
// under another token is refused and leaves the job active under its lease,
// which then completes it.
func TestPlainJobLeaseFenced(t *testing.T) {
	b, f := leasedPlainJob(t, "fenced")
	ctx := context.Background()
	stale := leaseOf(f)
	stale.Token++
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: stale}})
	if err != nil || !errors.Is(errs[0], broker.ErrLeaseLost) {
		t.Fatalf("complete under another token: %v, %v; want %v", errs, err, broker.ErrLeaseLost)
	}
	j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "fenced"})
	if err != nil || j.State != broker.StateActive || j.LeaseToken != f.LeaseToken {
		t.Fatalf("job after a refused acknowledgement: %+v, %v; want active under token %d", j, err, f.LeaseToken)
	}
	errs, err = b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(f)}})
	if err != nil || errs[0] != nil {
		t.Fatalf("complete under its lease: %v, %v", errs, err)
	}
	if j, err = b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "fenced"}); err != nil || j.State != broker.StateCompleted ||
		j.Attempt != 1 || !j.StartedAt.Equal(f.StartedAt) || j.FinishedAt.Before(f.StartedAt) || len(j.Attempts) != 1 {
		t.Fatalf("job after its completion: %+v, %v; want completed, attempt 1 started %v, one attempt listed", j, err, f.StartedAt)
	}
}

// A tenant's zset of completed jobs is made a table once it holds
// TABLE_FROM (32) of them (lib.lua), so completions stop scanning it, and
// the PIN that makes it one is never left in it.
func TestTenantCompletedIndexBecomesTable(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	for i := range 40 {
		mustInsert(t, b, job("tbl", fmt.Sprintf("j%02d", i), func(p *broker.JobInsertParams) { p.TenantID = "t1" }))
	}
	key := prefix + ":{tbl}:t:completed:t1"
	encoding := func() string {
		e, err := client.ObjectEncoding(ctx, key).Result()
		if err != nil {
			t.Fatalf("OBJECT ENCODING %s: %v", key, err)
		}
		return e
	}
	for done := 0; done < 40; done++ {
		jobs := fetch(t, b, "tbl", 1, time.Minute)
		if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(jobs[0])}}); err != nil || errs[0] != nil {
			t.Fatalf("complete %s: %v, %v", jobs[0].ID, errs, err)
		}
		if done == 30 && encoding() != "listpack" {
			t.Fatalf("%s with 31 jobs is a %s; want a listpack still", key, encoding())
		}
	}
	if e := encoding(); e != "skiplist" {
		t.Fatalf("%s with 40 jobs is a %s; want a skiplist", key, e)
	}
	zsetHoldsJobsOnly(t, client, key, 40, "completed")
}

// A queue's active zset and lease hash stay listpacks while small (a queue
// run a job at a time creates and deletes them on every job), and are made
// tables (lib.lua PIN) once a fetch brings them to TABLE_FROM (32) jobs;
// the PIN is never left in them.
func TestActiveSetBecomesTableWhenLarge(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	for i := range 40 {
		mustInsert(t, b, job("enc", fmt.Sprintf("j%02d", i)))
	}
	active, lease := prefix+":{enc}:active", redisbroker.LeaseKey(prefix, "enc")
	encodings := func() (string, string) {
		t.Helper()
		za, err := client.ObjectEncoding(ctx, active).Result()
		if err != nil {
			t.Fatalf("OBJECT ENCODING %s: %v", active, err)
		}
		hl, err := client.ObjectEncoding(ctx, lease).Result()
		if err != nil {
			t.Fatalf("OBJECT ENCODING %s: %v", lease, err)
		}
		return za, hl
	}
	fetch(t, b, "enc", 1, time.Minute)
	if za, hl := encodings(); za != "listpack" || hl != "listpack" {
		t.Fatalf("one job active: active set a %s, lease hash a %s; want listpacks", za, hl)
	}
	fetch(t, b, "enc", 30, time.Minute) // 31 active: below TABLE_FROM
	if za, hl := encodings(); za != "listpack" || hl != "listpack" {
		t.Fatalf("31 jobs active: active set a %s, lease hash a %s; want listpacks", za, hl)
	}
	fetch(t, b, "enc", 1, time.Minute) // 32 active
	if za, hl := encodings(); za != "skiplist" || hl != "hashtable" {
		t.Fatalf("32 jobs active: active set a %s, lease hash a %s; want a skiplist and a hashtable", za, hl)
	}
	zsetHoldsJobsOnly(t, client, active, 32, "fetched")
	if fields, err := client.HKeys(ctx, lease).Result(); err != nil || len(fields) != 32 {
		t.Fatalf("lease hash holds %d fields (%v); want the 32 jobs fetched", len(fields), err)
	}
}

// A fetch asking for more jobs than are pending pops once: the pop that
// came back short emptied the pending set. A fetch whose first pop met
// expired jobs pops again for the rest. (A server of its own: the test
// counts the server's ZPOPMIN calls.)
func TestFetchPopsAgainOnlyPastExpiredJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.StartWith(t, redistest.Options{})
	client := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = client.Close() })
	b, err := redisbroker.New(client, redisbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for i := range 3 {
		mustInsert(t, b, job("pop", fmt.Sprintf("e%d", i), func(p *broker.JobInsertParams) { p.TTL = time.Millisecond }))
	}
	for i := range 3 {
		mustInsert(t, b, job("pop", fmt.Sprintf("j%d", i)))
	}
	time.Sleep(5 * time.Millisecond) // the e jobs expire
	before := zpopminCalls(t, client)
	jobs := fetch(t, b, "pop", 3, time.Minute)
	if ids := idsOf(jobs); len(ids) != 3 || ids[0] != "j0" {
		t.Fatalf("fetched %v; want j0-j2, past the 3 expired jobs", ids)
	}
	if n := zpopminCalls(t, client) - before; n != 2 {
		t.Fatalf("a fetch past 3 expired jobs popped %d times; want 2", n)
	}
	mustInsert(t, b, job("pop", "k"))
	before = zpopminCalls(t, client)
	if jobs := fetch(t, b, "pop", 10, time.Minute); len(jobs) != 1 {
		t.Fatalf("fetched %v; want k", idsOf(jobs))
	}
	if n := zpopminCalls(t, client) - before; n != 1 {
		t.Fatalf("a fetch of the one pending job popped %d times; want 1", n)
	}
}

// zpopminCalls returns how many ZPOPMIN calls the server has run, scripts'
// included (INFO commandstats).
func zpopminCalls(t *testing.T, client *redis.Client) int {
	t.Helper()
	stats, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(stats, "cmdstat_zpopmin:calls=")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	if err != nil {
		t.Fatalf("commandstats: %v", err)
	}
	return n
}

// zsetHoldsJobsOnly fails the test unless the zset key holds n members,
// none of them the PIN (lib.lua) that makes a zset a table.
func zsetHoldsJobsOnly(t *testing.T, client *redis.Client, key string, n int, what string) {
	t.Helper()
	members, err := client.ZRange(context.Background(), key, 0, -1).Result()
	if err != nil || len(members) != n {
		t.Fatalf("%s holds %d members (%v); want the %d jobs %s", key, len(members), err, n, what)
	}
	for _, m := range members {
		if strings.HasPrefix(m, "#") {
			t.Fatalf("%s holds %q, not a job", key, m)
		}
	}
}

// A plain job's lease and done entries name its worker before its tenant
// (lib.lua), and completion and retention find the tenant past the
// worker's length: a completed job of a tenant is listed for its tenant,
// and retention removes it from that listing, whatever the length of the
// worker id (one, two and three digits).
func TestPlainJobTenantPastWorkerID(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 17, 120} {
		t.Run(fmt.Sprintf("worker=%d", n), func(t *testing.T) {
			t.Parallel()
			b, _, _ := newBrokerKeys(t)
			ctx := context.Background()
			for _, id := range []string{"old", "new"} {
				p := job("q", id)
				p.TenantID = "acme"
				mustInsert(t, b, p)
				jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute, WorkerID: strings.Repeat("w", n)})
				if err != nil || len(jobs) != 1 {
					t.Fatalf("fetch %s: %d jobs, %v", id, len(jobs), err)
				}
				errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(jobs[0])}})
				if err != nil || errs[0] != nil {
					t.Fatalf("complete %s: %v, %v", id, errs, err)
				}
				// Keep one completed job: after the second completion the first goes.
				if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: "q", CompletedMaxCount: 1}); err != nil {
					t.Fatalf("maintain after completing %s: %v", id, err)
				}
				list, err := b.JobList(ctx, &broker.JobListParams{Queue: "q", State: broker.StateCompleted, TenantID: "acme"})
				if err != nil {
					t.Fatalf("list acme's completed jobs: %v", err)
				}
				if got := idsOf(list.Jobs); len(got) != 1 || got[0] != id {
					t.Fatalf("acme's completed jobs after completing %s: %v, want [%s]", id, got, id)
				}
			}
		})
	}
}
