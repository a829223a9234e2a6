package wake

import (
	"context"
	"errors"
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
