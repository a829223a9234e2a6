package wake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noneScheduled is a broker with no scheduled jobs.
func noneScheduled(context.Context, []string) (map[string]time.Duration, error) {
	return map[string]time.Duration{}, nil
}

// waitAsync runs Wait in a goroutine and returns its result channel.
func waitAsync(h *Hub, queues []string, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- h.Wait(context.Background(), queues, timeout) }()
	return done
}

func expect(t *testing.T, done <-chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, want) {
			t.Fatalf("%s: Wait returned %v, want %v", what, err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Wait did not return", what)
	}
}

func TestWakeIsKeptUntilTheNextWait(t *testing.T) {
	h := New(noneScheduled)
	h.Notify("other", 0)
	h.Notify("q", 0)
	expect(t, waitAsync(h, []string{"q"}, time.Hour), nil, "kept wake")
	// Consumed: the next Wait sleeps until a new wake.
	done := waitAsync(h, []string{"a", "q"}, time.Hour)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with no new wake", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.Notify("q", 0)
	expect(t, done, nil, "wake while waiting")
	h.Close()
	expect(t, waitAsync(h, []string{"q"}, time.Hour), ErrClosed, "after close")
}

func TestWaitReturnsAtDueTimeAndTimeout(t *testing.T) {
	h := New(func(_ context.Context, qs []string) (map[string]time.Duration, error) {
		return map[string]time.Duration{"soon": 20 * time.Millisecond}, nil
	})
	defer h.Close()
	// The due time, learnt from the broker, ends an hour-long wait.
	expect(t, waitAsync(h, []string{"soon"}, time.Hour), nil, "due from refresh")
	// A due time announced while waiting re-arms the timer.
	done := waitAsync(h, []string{"later"}, time.Hour)
	h.Notify("later", 20*time.Millisecond)
	expect(t, done, nil, "due from notify")
	expect(t, waitAsync(h, []string{"idle"}, 10*time.Millisecond), nil, "timeout")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Wait(ctx, []string{"idle"}, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait returned %v", err)
	}
}

// WaitReady names the queues that woke it, so that a worker serving many
// fetches from those only: the one notified while it waits, those whose
// wakes were kept, those whose scheduled job fell due; none at the timeout.
func TestWaitReadyNamesTheQueuesWoken(t *testing.T) {
	h := New(func(_ context.Context, qs []string) (map[string]time.Duration, error) {
		return map[string]time.Duration{"due": 20 * time.Millisecond}, nil
	})
	defer h.Close()
	all := []string{"a", "b", "c", "due"}
	type result struct {
		ready []string
		err   error
	}
	wait := func(timeout time.Duration) <-chan result {
		done := make(chan result, 1)
		go func() {
			r, err := h.WaitReady(context.Background(), all, timeout)
			done <- result{r, err}
		}()
		return done
	}
	want := func(done <-chan result, what string, queues ...string) {
		t.Helper()
		select {
		case r := <-done:
			if r.err != nil || !slices.Equal(r.ready, queues) {
				t.Fatalf("%s: WaitReady returned %v, %v; want %v", what, r.ready, r.err, queues)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: WaitReady did not return", what)
		}
	}
	want(wait(time.Hour), "scheduled job due", "due")
	h.Notify("c", 0)
	h.Notify("a", 0)
	want(wait(0), "kept wakes, without waiting", "a", "c")
	want(wait(0), "nothing new, without waiting")
	done := wait(time.Hour)
	for !h.waiting() {
		time.Sleep(time.Millisecond)
	}
	h.Notify("b", 0)
	want(done, "a wake while waiting", "b")
	want(wait(10*time.Millisecond), "timeout")
}

// A due time notified while nobody waits wakes the next wait when it
// comes, and once it has passed the broker is asked again: the queue is
// not reported due again and again (a busy Manager collects wakes every
// millisecond, so the hub keeps what it learnt between calls).
func TestPassedDueTimeIsReadAgain(t *testing.T) {
	var reads atomic.Int64
	h := New(func(context.Context, []string) (map[string]time.Duration, error) {
		reads.Add(1)
		return map[string]time.Duration{}, nil
	})
	defer h.Close()
	ctx := context.Background()
	queues := []string{"a", "b"}
	for range 2 { // the first reads the due times, the second finds them known
		if got, err := h.WaitReady(ctx, queues, 0); err != nil || len(got) != 0 {
			t.Fatalf("WaitReady on an empty broker returned %v, %v; want nothing", got, err)
		}
	}
	h.Notify("a", 20*time.Millisecond)
	if got, err := h.WaitReady(ctx, queues, time.Hour); err != nil || !slices.Equal(got, []string{"a"}) {
		t.Fatalf("WaitReady with a job due in 20ms returned %v, %v; want [a]", got, err)
	}
	before := reads.Load()
	if got, err := h.WaitReady(ctx, queues, 50*time.Millisecond); err != nil || len(got) != 0 {
		t.Fatalf("WaitReady after the due job was reported returned %v, %v; want nothing (the timeout)", got, err)
	}
	if reads.Load() == before {
		t.Fatal("the broker was not asked again for the due time that passed")
	}
}

// BenchmarkCollectManyQueues is a busy Manager of a thousand queues
// collecting wakes (WaitReady with timeout 0), one queue woken between
// collects.
func BenchmarkCollectManyQueues(b *testing.B) {
	h := New(noneScheduled)
	defer h.Close()
	queues := make([]string, 1000)
	for i := range queues {
		queues[i] = fmt.Sprintf("queue-%d", i)
	}
	ctx := context.Background()
	if _, err := h.WaitReady(ctx, queues, 0); err != nil { // reads the due times once
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Notify(queues[i%len(queues)], 0)
		if got, err := h.WaitReady(ctx, queues, 0); err != nil || len(got) != 1 {
			b.Fatalf("WaitReady returned %v, %v; want the queue woken", got, err)
		}
	}
}
