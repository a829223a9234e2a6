package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/rediscount"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/schedstore"
)

// Ping stamps an unused prefix with the current stored format, and a
// broker refuses data written in a newer format instead of misreading it.
func TestStoredFormatVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping a fresh prefix: %v", err)
	}
	got, err := client.Get(ctx, prefix+":format").Int64()
	if err != nil || got != redisbroker.FormatVersion {
		t.Fatalf("format key after ping = %d, %v; want %d", got, err, redisbroker.FormatVersion)
	}

	// Data from a newer release: a fresh broker on the prefix refuses it.
	if err := client.Set(ctx, prefix+":format", redisbroker.FormatVersion+1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	newer, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	err = newer.Ping(ctx)
	if !errors.Is(err, redisbroker.ErrNewerFormat) {
		t.Fatalf("ping on newer-format data = %v, want ErrNewerFormat", err)
	}
	if v, _ := client.Get(ctx, prefix+":format").Int64(); v != redisbroker.FormatVersion+1 {
		t.Fatalf("a refusing broker rewrote the format key to %d", v)
	}
}

// A worker's Start pings: the first Ping of a broker reads the stored
// format in one round trip with no PING before it (the read proves Redis
// answers), later Pings send a PING only, and a first Ping of a Redis
// that is not there still fails.
func TestPingIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	stamped, _, prefix := newBrokerKeys(t)
	if err := stamped.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	var sent []string
	var mu sync.Mutex
	client.AddHook(rediscount.Hook(func(name string) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, name)
	}))
	b, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, want := range [][]string{{"get"}, {"ping"}} {
		mu.Lock()
		sent = nil
		mu.Unlock()
		if err := b.Ping(ctx); err != nil {
			t.Fatalf("ping %d: %v", i+1, err)
		}
		mu.Lock()
		got := slices.Clone(sent)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("ping %d sent %q, want %q", i+1, got, want)
		}
	}

	down, err := redisbroker.Open("redis://127.0.0.1:1", redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if err := down.Ping(ctx); err == nil {
		t.Error("the first ping of a Redis that is not listening succeeded")
	}
}

// TestFormat1SchedulesBecomeDocuments writes schedules in the layout of
// stored format 1 (a hash per schedule, a global name → queue index), then
// pings: package schedule's store reads them back, claim state included,
// and a claim of the next tick works on the converted schedule.
func TestFormat1SchedulesBecomeDocuments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	def := `{"name":"nightly","spec":"@every 1s","job":{"ID":"","Queue":"reports","Type":"r","MaxAttempts":3}}`
	old := prefix + ":{reports}:cron:nightly"
	since := time.Now().Add(-time.Hour).UnixMilli()
	for _, err := range []error{
		client.Set(ctx, prefix+":format", 1, 0).Err(),
		client.HSet(ctx, prefix+":schedules", "nightly", "reports").Err(),
		client.HSet(ctx, old, "def", def, "timing", "x", "ver", "4", "created", "100", "updated", "200",
			"paused", "0", "since", since, "last", since+1000).Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping format 1 data: %v", err)
	}
	ss, err := schedstore.New(b)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ss.ScheduleGet(ctx, "nightly")
	if err != nil || sc.Spec != "@every 1s" || sc.Job.Queue != "reports" || sc.Version != 4 || sc.Paused ||
		!sc.Since.Equal(time.UnixMilli(since)) || !sc.LastTick.Equal(time.UnixMilli(since+1000)) || !sc.CreatedAt.Equal(time.UnixMilli(100)) {
		t.Fatalf("converted schedule: %+v, %v", sc, err)
	}
	if n, _ := client.Exists(ctx, old, prefix+":schedules").Result(); n != 0 {
		t.Fatalf("%d keys of the old layout are left", n)
	}
	tick := sc.LastTick.Add(time.Second)
	res, err := ss.ScheduleClaim(ctx, &broker.ScheduleClaimParams{Name: "nightly", Version: sc.Version, Tick: tick,
		Job: &broker.JobInsertParams{ID: "cron:nightly:1", Queue: "reports", Type: "r", MaxAttempts: 3}})
	if err != nil || res.Status != broker.ClaimOK {
		t.Fatalf("claim on the converted schedule: %+v, %v", res, err)
	}
}

// Formats before 4 scored pending jobs (1000 - priority) * 2^40 + seq,
// higher numbers first. Ping on format 3 data rescores them for format 4,
// priority 1 first, keeping FIFO among equals, in the pending zset and the
// tenant's pending index; a second run changes nothing.
func TestStoredFormat3To4RescoresPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	const shift = 1 << 40
	prios := map[string]int{"a": 5, "b": 1, "c": 5, "d": 3} // inserted in this order
	pending, tenant := prefix+":{old}:pending", prefix+":{old}:t:pending:t1"
	for _, id := range []string{"a", "b", "c", "d"} {
		mustInsert(t, b, job("old", id, func(p *broker.JobInsertParams) {
			p.Priority, p.TenantID = prios[id], "t1"
			if id == "d" {
				p.TTL = time.Hour // a job with a state hash
			}
		}))
		// Rewrite the scores as format 3 wrote them.
		score, err := client.ZScore(ctx, pending, id).Result()
		if err != nil {
			t.Fatal(err)
		}
		seq := int64(score) % shift
		for _, key := range []string{pending, tenant} {
			if err := client.ZAdd(ctx, key, redis.Z{Score: float64((1000-prios[id])*shift + int(seq)), Member: id}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := client.Set(ctx, prefix+":format", 3, 0).Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"b", "d", "a", "c"}
	for run := range 2 {
		if run == 1 { // a crash after the rescoring, before the stamp: it runs again
			if err := client.Set(ctx, prefix+":format", 3, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		nb, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if err := nb.Ping(ctx); err != nil {
			t.Fatalf("ping on format 3 data: %v", err)
		}
		_ = nb.Close()
		if v, err := client.Get(ctx, prefix+":format").Int64(); err != nil || v != redisbroker.FormatVersion {
			t.Fatalf("format after the migration = %d, %v; want %d", v, err, redisbroker.FormatVersion)
		}
		for _, key := range []string{pending, tenant} {
			got, err := client.ZRange(ctx, key, 0, -1).Result()
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("run %d: order of %s after the migration %v, %v; want priority 1 first, FIFO among equals: %v", run, key, got, err, want)
			}
		}
	}
}

// The first write stamps an unused prefix with the current format, so jobs
// written before anything pinged are not taken later for data of an older
// format (whose migration would run over every job when a Manager starts).
func TestFirstWriteStampsFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, write := range []string{"insert", "insert many"} {
		b, client, prefix := newBrokerKeys(t)
		var err error
		p := &broker.JobInsertParams{ID: "j", Queue: "q", Type: "t", MaxAttempts: 1}
		if write == "insert" {
			_, err = b.JobInsert(ctx, p)
		} else {
			_, err = b.JobInsertMany(ctx, []*broker.JobInsertParams{p})
		}
		if err != nil {
			t.Fatal(err)
		}
		if v, err := client.Get(ctx, prefix+":format").Int(); err != nil || v != redisbroker.FormatVersion {
			t.Errorf("%s on a fresh prefix: format key = %d, %v; want %d", write, v, err, redisbroker.FormatVersion)
		}
	}
}

// Formats before 5 held a tenant job's unique key under the key itself, so
// that tenants contended for keys. Ping on format 4 data moves the keys of
// tenant jobs to their tenant's slot: a key an old unfinished job holds
// keeps holding against its own tenant only, an old cancelled job retried
// takes its key back in its tenant, a job with no tenant is untouched, and
// a second run changes nothing.
func TestStoredFormat4To5MovesUniqueKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	const q = "old"
	withKey := func(tenant, key string) func(*broker.JobInsertParams) {
		return func(p *broker.JobInsertParams) { p.TenantID, p.UniqueKey = tenant, key }
	}
	mustInsert(t, b, job(q, "held", withKey("t1", "k1")), job(q, "stopped", withKey("t1", "k2")),
		job(q, "plain", withKey("", "k3")))
	if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: q, ID: "stopped"}); err != nil {
		t.Fatal(err)
	}
	// Rewrite the tenant jobs' keys as format 4 wrote them.
	unique := prefix + ":{" + q + "}:u:"
	for id, key := range map[string]string{"held": "k1", "stopped": "k2"} {
		if err := client.HSet(ctx, prefix+":{"+q+"}:j:"+id, "u", key).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Rename(ctx, unique+broker.UniqueSlot("t1", "k1"), unique+"k1").Err(); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		// The second run: a crash after the move, before the stamp.
		if err := client.Set(ctx, prefix+":format", 4, 0).Err(); err != nil {
			t.Fatal(err)
		}
		nb, err := redisbroker.New(client, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		if err := nb.Ping(ctx); err != nil {
			t.Fatalf("run %d: ping on format 4 data: %v", run, err)
		}
		_ = nb.Close()
		if v, err := client.Get(ctx, prefix+":format").Int64(); err != nil || v != redisbroker.FormatVersion {
			t.Fatalf("run %d: format after the migration = %d, %v; want %d", run, v, err, redisbroker.FormatVersion)
		}
		if n, err := client.Exists(ctx, unique+"k1").Result(); err != nil || n != 0 {
			t.Fatalf("run %d: the old key %sk1 still exists (%d, %v)", run, unique, n, err)
		}
	}
	for id, key := range map[string]string{"held": "k1", "stopped": "k2", "plain": "k3"} {
		if j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: q, ID: id}); err != nil || j.UniqueKey != key {
			t.Fatalf("job %s after the migration: %+v, %v; want unique key %s", id, j, err, key)
		}
	}
	wantDup := func(what string, p *broker.JobInsertParams, holder string) {
		t.Helper()
		_, err := b.JobInsert(ctx, p)
		var dup *broker.DuplicateError
		if !errors.As(err, &dup) || dup.ExistingID != holder || dup.UniqueKey != p.UniqueKey {
			t.Fatalf("%s: %v; want a duplicate naming %s and key %s", what, err, holder, p.UniqueKey)
		}
	}
	wantDup("insert with the key an old tenant job holds", job(q, "again", withKey("t1", "k1")), "held")
	wantDup("insert with the key an old job with no tenant holds", job(q, "again", withKey("", "k3")), "plain")
	mustInsert(t, b, job(q, "other-tenant", withKey("t2", "k1")), job(q, "no-tenant", withKey("", "k1")))
	if _, err := b.JobRetry(ctx, &broker.JobRetryParams{Queue: q, ID: "stopped", TenantID: "t1"}); err != nil {
		t.Fatalf("retry the old cancelled job: %v", err)
	}
	wantDup("insert with the key a retried old job took back", job(q, "again", withKey("t1", "k2")), "stopped")
	mustInsert(t, b, job(q, "other-tenant-2", withKey("t2", "k2")))
}
