package admin_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestSweepIdempotency: records past their expiry are deleted, fresh ones
// kept, across queues.
func TestSweepIdempotency(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		var mu sync.Mutex
		now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		set := func(t time.Time) { mu.Lock(); defer mu.Unlock(); now = t }
		t0 := clock()
		srv := apitest.Start(t, admin.Config{Broker: b, Now: clock})
		enqueue := func(queue, key string) {
			srv.Do(t, "POST", "/api/v1/queues/"+queue+"/jobs", apitest.Operator, `{"type":"report"}`,
				"Idempotency-Key", key).Want(t, http.StatusCreated)
		}
		enqueue("q1", "old")
		set(t0.Add(23 * time.Hour))
		enqueue("q1", "fresh")
		enqueue("q2", "fresh")

		ctx := context.Background()
		cm := b.(broker.Committer)
		exists := func(queue, key string) bool {
			t.Helper()
			_, err := cm.DocGet(ctx, queue, admin.IdempotencyKind, admin.IdempotencyDocKey("", key))
			if err != nil && !errors.Is(err, broker.ErrDocNotFound) {
				t.Fatalf("read record %s/%s: %v", queue, key, err)
			}
			return err == nil
		}
		// Before the expiry nothing goes.
		if n, err := admin.SweepIdempotency(ctx, b, t0.Add(admin.IdempotencyTTL-time.Millisecond)); err != nil || n != 0 {
			t.Fatalf("sweep before any expiry: %d, %v", n, err)
		}
		n, err := admin.SweepIdempotency(ctx, b, t0.Add(admin.IdempotencyTTL))
		if err != nil || n != 1 {
			t.Fatalf("sweep at the first expiry deleted %d records, %v; want 1", n, err)
		}
		if exists("q1", "old") {
			t.Fatal("the expired record survived the sweep")
		}
		if !exists("q1", "fresh") || !exists("q2", "fresh") {
			t.Fatal("the sweep deleted a fresh record")
		}
		// The kept records still answer a retry with the first job.
		r1 := srv.Do(t, "POST", "/api/v1/queues/q2/jobs", apitest.Operator, `{"type":"report"}`, "Idempotency-Key", "fresh")
		r2 := srv.Do(t, "POST", "/api/v1/queues/q2/jobs", apitest.Operator, `{"type":"report"}`, "Idempotency-Key", "fresh")
		if r1.Status != http.StatusCreated || string(r1.Body) != string(r2.Body) {
			t.Fatalf("a kept key answered %d %s then %s", r1.Status, r1.Body, r2.Body)
		}
		if n, err := admin.SweepIdempotency(ctx, b, t0.Add(23*time.Hour+admin.IdempotencyTTL)); err != nil || n != 2 {
			t.Fatalf("sweep at the second expiry deleted %d records, %v; want 2", n, err)
		}
		if exists("q1", "fresh") || exists("q2", "fresh") {
			t.Fatal("an expired record survived the second sweep")
		}
	})
}

// TestSweepIdempotencyNeedsCommitter: a broker without documents is
// refused with an error naming what is missing.
func TestSweepIdempotencyNeedsCommitter(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		_, err := admin.SweepIdempotency(context.Background(), struct{ broker.Broker }{b}, time.Now())
		if err == nil || !strings.Contains(err.Error(), "broker.Committer") {
			t.Fatalf("sweep over a broker without Committer: %v", err)
		}
	})
}
