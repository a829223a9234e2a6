package redisbroker_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
)

// TestTenantIndexExact runs a mixed workload over jobs of two tenants and
// of none, through every path that moves or removes a job, then compares
// the tenant index zsets themselves with the state zsets: each tenant's
// zset of a state holds exactly the tenant's jobs in that state, with the
// same scores, and nothing else is left under the index prefix.
func TestTenantIndexExact(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	const q = "tx"
	tenants := []string{"a", "b", ""}
	n := 0
	add := func(opts ...func(*broker.JobInsertParams)) *broker.JobInsertParams {
		n++
		tenant := tenants[n%3]
		p := job(q, fmt.Sprintf("j%03d", n), append([]func(*broker.JobInsertParams){func(p *broker.JobInsertParams) {
			p.TenantID = tenant
			p.Priority = n % 3
		}}, opts...)...)
		mustInsert(t, b, p)
		return p
	}
	for range 9 {
		add()
		add(func(p *broker.JobInsertParams) { p.Delay = 20 * time.Millisecond })
		add(func(p *broker.JobInsertParams) { p.TTL = 20 * time.Millisecond })
		add(func(p *broker.JobInsertParams) { p.UniqueKey = p.ID })
		add(func(p *broker.JobInsertParams) { p.Delay = time.Hour })
	}
	var batch []*broker.JobInsertParams
	for i := range 9 {
		batch = append(batch, job(q, fmt.Sprintf("m%03d", i), func(p *broker.JobInsertParams) { p.TenantID = tenants[i%3] }))
	}
	if _, err := b.JobInsertMany(ctx, batch); err != nil {
		t.Fatalf("insert many: %v", err)
	}
	check := func(when string) {
		t.Helper()
		if got, want := tenantIndex(t, client, prefix, q), expectedIndex(t, b, client, prefix, q); !maps.Equal(got, want) {
			t.Fatalf("%s: tenant index\n%v\nwant (from the state zsets)\n%v", when, got, want)
		}
	}
	check("after inserts")

	// Promotion and expiry, once the short delays and TTLs are due.
	eventually(t, "short delays promoted and TTLs expired", func() bool {
		if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: q}); err != nil {
			t.Fatalf("maintain: %v", err)
		}
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		return err == nil && st.Scheduled == 9 && st.Expired == 9
	})
	check("after promotion and expiry")

	// Fetch, then every outcome.
	jobs := fetch(t, b, q, 30, 200*time.Millisecond)
	if len(jobs) != 30 {
		t.Fatalf("fetched %d jobs, want 30", len(jobs))
	}
	for i, j := range jobs {
		lp := leaseOf(j)
		var err error
		switch i % 6 {
		case 0:
			_, err = b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lp}})
		case 1:
			_, err = b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "x", RetryDelay: time.Hour})
		case 2:
			_, err = b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "x", Discard: true})
		case 3:
			err = b.JobRelease(ctx, &lp)
		case 4:
			_, err = b.JobLeaseExtend(ctx, []*broker.JobLeaseParams{&lp}, time.Hour)
		}
		if err != nil {
			t.Fatalf("outcome %d of job %s: %v", i%6, j.ID, err)
		}
	}
	check("after fetch, complete, fail, release, extend")

	// Lease recovery (case 5 above kept a short lease).
	eventually(t, "expired leases recovered", func() bool {
		r, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: q})
		return err == nil && r.Recovered+r.Dead > 0
	})
	check("after lease recovery")

	// Admin operations, scoped to the job's tenant.
	for st, op := range map[broker.State]func(j *broker.Job) error{
		broker.StatePending: func(j *broker.Job) error {
			_, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: q, ID: j.ID, TenantID: j.TenantID})
			return err
		},
		broker.StateScheduled: func(j *broker.Job) error {
			return b.JobDelete(ctx, &broker.JobDeleteParams{Queue: q, ID: j.ID, TenantID: j.TenantID})
		},
		broker.StateDead: func(j *broker.Job) error {
			_, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: q, ID: j.ID, TenantID: j.TenantID})
			return err
		},
		broker.StateExpired: func(j *broker.Job) error {
			return b.JobDelete(ctx, &broker.JobDeleteParams{Queue: q, ID: j.ID, TenantID: j.TenantID})
		},
	} {
		res, err := b.JobList(ctx, &broker.JobListParams{Queue: q, State: st})
		if err != nil {
			t.Fatalf("list %s: %v", st, err)
		}
		for i, j := range res.Jobs {
			if i%2 == 0 {
				if err := op(j); err != nil {
					t.Fatalf("admin operation on %s job %s: %v", st, j.ID, err)
				}
			}
		}
	}
	check("after cancel, retry and delete")

	// The generic commit: inserts (pending and scheduled), a reschedule, a
	// cancel, completions and failures under leases, and a delete.
	var ins []*broker.CommitInsert
	for i := range 6 {
		p := job(q, fmt.Sprintf("c%03d", i), func(p *broker.JobInsertParams) { p.TenantID = tenants[i%3] })
		if i%2 == 1 {
			p.Delay = time.Hour
		}
		ins = append(ins, &broker.CommitInsert{Job: p})
	}
	if _, err := b.Commit(ctx, &broker.CommitParams{Scope: q, Insert: ins}); err != nil {
		t.Fatalf("commit inserts: %v", err)
	}
	if _, err := b.Commit(ctx, &broker.CommitParams{Scope: q, Cancel: []string{"c000"},
		Reschedule: []*broker.JobReschedule{{ID: "c001", RunAt: time.Now().Add(-time.Second)}, {ID: "c004", RunAt: time.Now().Add(2 * time.Hour)}}}); err != nil {
		t.Fatalf("commit cancel and reschedule: %v", err)
	}
	check("after commits that insert, cancel and reschedule")
	var leased []*broker.Job
	for {
		js := fetch(t, b, q, 50, time.Hour)
		if len(js) == 0 {
			break
		}
		leased = append(leased, js...)
	}
	cp := &broker.CommitParams{Scope: q}
	for i, j := range leased {
		if i%2 == 0 {
			cp.Complete = append(cp.Complete, &broker.JobCompleteParams{JobLeaseParams: leaseOf(j)})
		} else {
			cp.Fail = append(cp.Fail, &broker.JobFailParams{JobLeaseParams: leaseOf(j), Error: "x", RetryDelay: time.Hour})
		}
	}
	if _, err := b.Commit(ctx, cp); err != nil {
		t.Fatalf("commit completions and failures: %v", err)
	}
	if _, err := b.Commit(ctx, &broker.CommitParams{Scope: q, Delete: []string{"c000"}}); err != nil {
		t.Fatalf("commit delete: %v", err)
	}
	check("after commits that complete, fail and delete")

	// Complete everything left, then retention.
	for {
		jobs := fetch(t, b, q, 50, time.Hour)
		if len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			if _, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(j)}}); err != nil {
				t.Fatalf("complete %s: %v", j.ID, err)
			}
		}
	}
	if _, err := b.QueueMaintain(ctx, &broker.QueueMaintainParams{Queue: q, CompletedMaxCount: 3}); err != nil {
		t.Fatalf("maintain: %v", err)
	}
	check("after retention")
}

// tenantIndex reads every tenant index zset of queue q: "state:tenant id" →
// score.
func tenantIndex(t *testing.T, client *redis.Client, prefix, q string) map[string]float64 {
	t.Helper()
	ctx := context.Background()
	base := prefix + ":{" + q + "}:t:"
	out := map[string]float64{}
	iter := client.Scan(ctx, 0, base+"*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		zs, err := client.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		for _, z := range zs {
			out[strings.TrimPrefix(key, base)+" "+z.Member.(string)] = z.Score
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

// expectedIndex derives the tenant index from the state zsets and the
// jobs' tenants.
func expectedIndex(t *testing.T, b broker.Broker, client *redis.Client, prefix, q string) map[string]float64 {
	t.Helper()
	ctx := context.Background()
	out := map[string]float64{}
	for _, st := range broker.States {
		zs, err := client.ZRangeWithScores(ctx, prefix+":{"+q+"}:"+string(st), 0, -1).Result()
		if err != nil {
			t.Fatalf("read %s zset: %v", st, err)
		}
		for _, z := range zs {
			id := z.Member.(string)
			j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: q, ID: id})
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			if j.State != st {
				t.Fatalf("job %s is %s but in the %s zset", id, j.State, st)
			}
			if j.TenantID != "" {
				out[string(st)+":"+j.TenantID+" "+id] = z.Score
			}
		}
	}
	return out
}

// TestFormat2DataGetsTenantIndex: data written in stored format 2, before
// the tenant index, is indexed when a format-3 broker first pings it, the
// pending jobs that had only a body included; the index then stays exact.
func TestFormat2DataGetsTenantIndex(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	const q = "old"
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var plain []string // pending, no options: format 2 wrote no state hash for them
	for i := range 12 {
		p := job(q, fmt.Sprintf("o%02d", i), func(p *broker.JobInsertParams) { p.TenantID = []string{"a", "b", ""}[i%3] })
		switch i % 4 {
		case 1:
			p.Delay = time.Hour
		case 2:
			p.MaxAttempts = 1
		}
		mustInsert(t, b, p)
		if i%4 == 0 || i%4 == 3 {
			plain = append(plain, p.ID)
		}
	}
	for _, j := range fetch(t, b, q, 2, time.Hour) { // o00 (completed) and o02 (dead)
		if j.ID == "o02" {
			_, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: leaseOf(j), Error: "x"})
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(j)}}); err != nil {
			t.Fatal(err)
		}
		plain = plain[1:]
	}
	// Take the data back to format 2.
	base := prefix + ":{" + q + "}:"
	keys, err := client.Keys(ctx, base+"t:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("tenant index keys: %v, %v", keys, err)
	}
	client.Del(ctx, keys...)
	for i := range 12 {
		client.HDel(ctx, base+fmt.Sprintf("j:o%02d", i), "tn")
	}
	for _, id := range plain {
		client.Del(ctx, base+"j:"+id)
	}
	client.Set(ctx, prefix+":format", 2, 0)

	upgraded, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	if err := upgraded.Ping(ctx); err != nil {
		t.Fatalf("ping format-2 data: %v", err)
	}
	if v, _ := client.Get(ctx, prefix+":format").Int64(); v != redisbroker.FormatVersion {
		t.Fatalf("format after migration = %d, want %d", v, redisbroker.FormatVersion)
	}
	got, want := tenantIndex(t, client, prefix, q), expectedIndex(t, upgraded, client, prefix, q)
	if len(want) != 8 || !maps.Equal(got, want) {
		t.Fatalf("tenant index after migration\n%v\nwant (8 entries)\n%v", got, want)
	}
	for _, j := range fetch(t, upgraded, q, 10, time.Hour) {
		if _, err := upgraded.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: leaseOf(j)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tenantIndex(t, client, prefix, q), expectedIndex(t, upgraded, client, prefix, q); !maps.Equal(got, want) {
		t.Fatalf("tenant index after processing the migrated jobs\n%v\nwant\n%v", got, want)
	}
}

// TestRecentCompletionsWindow checks that QueueStats.CompletedLastMinute
// counts by the Redis clock over the finish-time scores: a job whose score
// says it finished just inside the window counts, queue-wide and for its
// tenant; moved just outside it, it no longer does.
func TestRecentCompletionsWindow(t *testing.T) {
	t.Parallel()
	b, client, prefix := newBrokerKeys(t)
	ctx := context.Background()
	const q = "recent"
	if _, err := b.JobInsert(ctx, &broker.JobInsertParams{Queue: q, ID: "done", Type: "t", TenantID: "t1", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: 1, LeaseDuration: time.Minute})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("fetch: %v %v", jobs, err)
	}
	errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: "done", Token: jobs[0].LeaseToken}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("complete: %v %v", errs, err)
	}
	zq, zt := redisbroker.CompletedKeys(prefix, q, "t1")
	for _, c := range []struct {
		age  time.Duration // how long before now the job's scores say it finished
		want int64
	}{{broker.RecentWindow - 5*time.Second, 1}, {broker.RecentWindow + 5*time.Second, 0}} {
		now, err := client.Time(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		score := float64(now.Add(-c.age).UnixMicro())
		for _, z := range []string{zq, zt} {
			if err := client.ZAddXX(ctx, z, redis.Z{Score: score, Member: "done"}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, scope := range []string{"", "t1"} {
			st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q, TenantID: scope})
			if err != nil || st.CompletedLastMinute != c.want || st.Completed != 1 {
				t.Fatalf("stats of tenant %q, the job finished %v ago = %+v, %v; want 1 completed, %d in the last minute",
					scope, c.age, st, err, c.want)
			}
		}
	}
}
