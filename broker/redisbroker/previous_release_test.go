package redisbroker_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/prevrelease"
	"github.com/redis/go-redis/v9"
)

// testdata/format-0.json holds every key (as DUMP output) that the release
// before stored formats were versioned (commit c8c1d83) wrote, by its own
// code, under the prefix "prev": eight jobs of queue "invoices" (one
// completed, five pending with priorities 1, 3, 0, -5 and a plain job with
// no tenant, one scheduled, one cancelled) and a cron schedule. The test
// restores them under its own prefix; the first Ping migrates them, and
// every job and the schedule must read back as the new release means them.
func TestOpenDataOfPreviousRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	raw, err := os.ReadFile("testdata/format-0.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ Key, Dump string }
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		d, err := hex.DecodeString(e.Dump)
		if err != nil {
			t.Fatal(err)
		}
		key := prefix + strings.TrimPrefix(e.Key, "prev")
		if err := client.Restore(ctx, key, 0, string(d)).Err(); err != nil {
			t.Fatalf("restore %s: %v", key, err)
		}
	}
	// The old release wrote the scheduled job due an hour after it wrote
	// the fixture; that hour has passed. Move it (field "r" and its score)
	// a day past now, so that what the test checks does not depend on the
	// date it runs.
	due := time.Now().Add(24 * time.Hour).UnixMilli()
	if err := client.HSet(ctx, prefix+":{invoices}:j:scheduled", "r", due).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ZAdd(ctx, prefix+":{invoices}:scheduled", redis.Z{Score: float64(due), Member: "scheduled"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping (migrates the old data): %v", err)
	}
	if v, err := client.Get(ctx, prefix+":format").Int(); err != nil || v != redisbroker.FormatVersion {
		t.Fatalf("stored format after migration = %d, %v; want %d", v, err, redisbroker.FormatVersion)
	}

	prevrelease.Check(t, b, "pending-p1 pending-p3 pending-p0 plain pending-neg")
}
