package redisbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
	newer, err := redisbroker.New(client, redisbroker.Options{Prefix: prefix})
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
