package redisbroker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

// The Manager-level wake-up tests (new, delayed, retried and recovered
// jobs) run on both brokers in the root package (wake_test.go); these check
// the Redis JobWait's own contract.

func TestJobWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("insert wakes a waiter", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		// The first wait returns once its subscription is confirmed.
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "a", Queue: "q", Type: "t", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("JobWait was not woken by an insert")
		}
	})
	t.Run("a wake before the wait is kept", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "a", Queue: "q", Type: "t", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an insert just before JobWait was lost")
		}
	})
	t.Run("an insert wakes only where no job was pending", func(t *testing.T) {
		t.Parallel()
		b, client, prefix := newBrokerKeys(t)
		ps := client.Subscribe(ctx, prefix+":{q}:wake", prefix+":{f}:wake")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil { // the first confirmation
			t.Fatal(err)
		}
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.QueueFairSet(ctx, &broker.FairPolicy{Queue: "f", Fair: true}); err != nil {
			t.Fatal(err)
		}
		insert := func(queue, id string, delay time.Duration) {
			t.Helper()
			ps := []*broker.JobInsertParams{{ID: id, Queue: queue, Type: "t", MaxAttempts: 1, Delay: delay}}
			if delay > 0 { // the batch path; a plain Add takes the single-job one
				ps = append(ps, &broker.JobInsertParams{ID: id + "+", Queue: queue, Type: "t", MaxAttempts: 1, Delay: delay})
			}
			if _, err := b.JobInsertMany(ctx, ps); err != nil {
				t.Fatal(err)
			}
		}
		insert("q", "a", 0)         // the queue was empty: wakes
		insert("q", "b", 0)         // a is pending: wakes nobody
		insert("q", "c", time.Hour) // scheduled: announces its due time
		insert("f", "d", 0)         // fair: wakes, empty or not
		insert("f", "e", 0)
		var got []string
		for len(got) < 4 {
			m, err := ps.ReceiveTimeout(ctx, 10*time.Second)
			if err != nil {
				t.Fatalf("after wakes %v: %v", got, err)
			}
			msg, ok := m.(*redis.Message)
			if !ok {
				t.Fatalf("unexpected %T %v", m, m)
			}
			payload := msg.Payload
			if payload != "0" {
				payload = "due"
			}
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(msg.Channel, prefix+":{"), "}:wake")+" "+payload)
		}
		if want := []string{"q 0", "q due", "f 0", "f 0"}; !slices.Equal(got, want) {
			t.Fatalf("wakes %v, want %v (none for b, inserted behind a)", got, want)
		}
	})
	t.Run("cancel and close end a wait", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- b.JobWait(cctx, []string{"q"}, time.Hour) }()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("after cancel: %v, want context.Canceled", err)
		}
		go func() { done <- b.JobWait(ctx, []string{"q"}, time.Hour) }()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, broker.ErrClosed) {
			t.Fatalf("after close: %v, want ErrClosed", err)
		}
	})
}
