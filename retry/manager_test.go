package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// fakeSleep records the delays Retry asks for without waiting.
type fakeSleep struct{ delays []time.Duration }

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.delays = append(f.delays, d)
	return ctx.Err()
}

func TestRetrySucceedsAfterFailures(t *testing.T) {
	fs := &fakeSleep{}
	m := &Manager{Policy: Policy{MaxAttempts: 5, BaseDelay: time.Second, Multiplier: 2, MaxDelay: 3 * time.Second}, Sleep: fs.sleep}
	calls := 0
	err := m.Retry(context.Background(), func(context.Context) error {
		calls++
		if calls < 4 {
			return errors.New("transient")
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("Retry = %v after %d calls, want nil after 4", err, calls)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if len(fs.delays) != len(want) {
		t.Fatalf("slept %v, want %v", fs.delays, want)
	}
	for i := range want {
		if fs.delays[i] != want[i] {
			t.Fatalf("slept %v, want %v (capped by MaxDelay)", fs.delays, want)
		}
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	fs := &fakeSleep{}
	m := &Manager{Policy: Policy{MaxAttempts: 3, BaseDelay: time.Millisecond}, Sleep: fs.sleep}
	boom := errors.New("boom")
	calls := 0
	err := m.Retry(context.Background(), func(context.Context) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 3 || len(fs.delays) != 2 {
		t.Fatalf("Retry = %v after %d calls and %d sleeps; want boom after 3 calls and 2 sleeps", err, calls, len(fs.delays))
	}
}

func TestRetryStopsOnNoRetry(t *testing.T) {
	bad := errors.New("malformed input")
	for _, c := range []struct {
		name string
		err  error
		want error // what Retry returns
	}{
		{"marked", NoRetry(bad), bad},
		{"marked, then wrapped", fmt.Errorf("load invoice: %w", NoRetry(bad)), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := &fakeSleep{}
			m := &Manager{Policy: Policy{MaxAttempts: 10}, Sleep: fs.sleep}
			calls := 0
			err := m.Retry(context.Background(), func(context.Context) error { calls++; return c.err })
			want := c.want
			if want == nil {
				want = c.err
			}
			if err != want || calls != 1 || len(fs.delays) != 0 {
				t.Fatalf("Retry = %v after %d calls and %d sleeps; want %v after 1 call and no sleep", err, calls, len(fs.delays), want)
			}
			if !errors.Is(err, bad) {
				t.Fatalf("Retry = %v, which does not wrap the cause", err)
			}
		})
	}
	if !IsNoRetry(NoRetry(bad)) || !IsNoRetry(fmt.Errorf("x: %w", NoRetry(bad))) || IsNoRetry(bad) || IsNoRetry(nil) {
		t.Fatal("IsNoRetry misjudges marked, wrapped or plain errors")
	}
	if err := NoRetry(nil); err == nil || !IsNoRetry(err) || err.Error() != "no retry" {
		t.Fatalf("NoRetry(nil) = %v, want a marked error saying \"no retry\"", err)
	}
}

// TestRetryHonoursContext uses the real sleep: a cancel during a long
// backoff must end Retry promptly with both the context's and fn's error.
func TestRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{Policy: Policy{MaxAttempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}}
	boom := errors.New("boom")
	done := make(chan error, 1)
	go func() { done <- m.Retry(ctx, func(context.Context) error { return boom }) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Retry after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry did not return within 5s of its context being cancelled during a 1h backoff")
	}
}

func TestRetryJoinsLastErrorOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	boom := errors.New("boom")
	m := &Manager{Policy: Policy{MaxAttempts: 5}, Sleep: func(context.Context, time.Duration) error { cancel(); return context.Canceled }}
	err := m.Retry(ctx, func(context.Context) error { return boom })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) {
		t.Fatalf("Retry = %v, want both context.Canceled and the last error", err)
	}
	calls := 0
	err = m.Retry(ctx, func(context.Context) error { calls++; return nil })
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Fatalf("Retry on a done context = %v after %d calls, want context.Canceled and no call", err, calls)
	}
}

func TestRetryRejectsInvalidPolicy(t *testing.T) {
	m := &Manager{Policy: Policy{BaseDelay: -time.Second}}
	if err := m.Retry(context.Background(), func(context.Context) error { return nil }); err == nil {
		t.Fatal("Retry with a negative base delay returned nil")
	}
}
