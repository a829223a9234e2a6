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

// TestJobWaitMute checks broker.WakeMuter: a muted queue's channel is
// unsubscribed (Redis sends this process none of its wakes), and unmuting
// it loses nothing published meanwhile: a job inserted pending wakes the
// waiter at once, one scheduled is noticed when it falls due.
func TestJobWaitMute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, client, prefix := newBrokerKeys(t)
	channel := prefix + ":{q}:wake"
	subscribers := func(want int64, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := client.PubSubNumSub(ctx, channel).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n[channel] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d subscribers of %s, want %d", what, n[channel], channel, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// waitFor waits for q's wake, up to 10 s.
	waitFor := func(what string) {
		t.Helper()
		qs, err := b.JobWaitReady(ctx, []string{"q"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(qs, []string{"q"}) {
			t.Fatalf("%s: JobWaitReady named %v, want [q]", what, qs)
		}
	}
	insert := func(id string, delay time.Duration) {
		t.Helper()
		if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: id, Queue: "q", Type: "t", MaxAttempts: 1, Delay: delay}); err != nil {
			t.Fatal(err)
		}
	}
	mute := func(on bool) {
		t.Helper()
		if err := b.JobWaitMute(ctx, "q", on); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.JobWait(ctx, []string{"q"}, time.Hour); err != nil { // subscribes
		t.Fatal(err)
	}
	subscribers(1, "before muting")

	mute(true)
	mute(true) // counted: two unmutes undo it
	subscribers(0, "muted")
	// A collect must not subscribe the muted queue again.
	if _, err := b.JobWaitReady(ctx, []string{"q"}, 0); err != nil {
		t.Fatal(err)
	}
	subscribers(0, "muted, after a collect")
	insert("pending", 0) // publishes on the empty queue: nobody hears it
	mute(false)
	mute(false)
	waitFor("a job inserted while muted")
	subscribers(1, "unmuted")

	mute(true)
	subscribers(0, "muted again")
	insert("scheduled", 300*time.Millisecond) // its due time is published, unheard
	mute(false)
	waitFor("the confirmation of the new subscription")
	waitFor("a job scheduled while muted, when due")

	if err := b.JobWaitMute(ctx, "no:{such}", true); !errors.Is(err, broker.ErrInvalidJob) {
		t.Fatalf("mute of an invalid queue name: %v, want ErrInvalidJob", err)
	}
	if err := b.JobWaitMute(ctx, "other", false); err != nil {
		t.Fatalf("unmute of a queue never muted: %v, want nil", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.JobWaitMute(ctx, "q", true); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("mute after Close: %v, want ErrClosed", err)
	}
}
