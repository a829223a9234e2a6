package redisbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
