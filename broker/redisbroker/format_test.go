package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/redisbroker"
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
