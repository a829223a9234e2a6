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
	t.Run("an insert wakes only where no job was pending or it goes first", func(t *testing.T) {
		t.Parallel()
		b, client, prefix := newBrokerKeys(t)
		ps := client.Subscribe(ctx, prefix+":{q}:wake", prefix+":{f}:wake")
		defer ps.Close()
		for range 2 { // the subscriptions' confirmations
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
		}
		insertAt := func(queue, id string, delay time.Duration, prio int, batch bool) {
			t.Helper()
			ps := []*broker.JobInsertParams{{ID: id, Queue: queue, Type: "t", MaxAttempts: 1, Delay: delay, Priority: prio}}
			if batch { // the batch path; a plain Add takes the single-job one
				ps = append(ps, &broker.JobInsertParams{ID: id + "+", Queue: queue, Type: "t", MaxAttempts: 1, Delay: delay, Priority: broker.MaxPriority})
			}
			if _, err := b.JobInsertMany(ctx, ps); err != nil {
				t.Fatal(err)
			}
		}
		insert := func(queue, id string, delay time.Duration) { t.Helper(); insertAt(queue, id, delay, 0, delay > 0) }
		check := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		check(b.QueueFairSet(ctx, &broker.FairPolicy{Queue: "f", Fair: true})) // wakes: held jobs may go
		insert("q", "a", 0)                                                    // the queue was empty: wakes
		insert("q", "b", 0)                                                    // a is pending: wakes nobody
		insert("q", "c", time.Hour)                                            // scheduled: announces its due time
		insert("f", "d", 0)                                                    // fair: wakes, empty or not
		insert("f", "e", 0)
		check(b.QueueTenantPause(ctx, "f", "t1", true))  // holds jobs back: no wake
		check(b.QueueTenantPause(ctx, "f", "t1", false)) // lets them go: wakes
		check(b.QueuePause(ctx, "q"))
		check(b.QueueResume(ctx, "q"))
		insert("q", "x", 0) // behind a and b: wakes nobody
		insert("q", "y", time.Hour)
		// More urgent than the head: a Manager serving many busy queues
		// gives a woken queue the next turn, so these wake, in a batch and
		// alone; one as urgent as the new head goes behind it: no wake.
		insertAt("q", "u2", 0, broker.DefaultPriority-1, true)
		insertAt("q", "u1", 0, broker.MinPriority, false)
		insertAt("q", "u1b", 0, broker.MinPriority, false)
		var got []string
		want := []string{"f 0", "q 0", "q due", "f 0", "f 0", "f 0", "q 0", "q due", "q 0", "q 0"}
		for len(got) < len(want) {
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
		if !slices.Equal(got, want) {
			t.Fatalf("wakes %v, want %v (none for b and x, inserted behind a)", got, want)
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
