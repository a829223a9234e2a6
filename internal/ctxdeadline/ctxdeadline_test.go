package ctxdeadline

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// within fails unless ctx's deadline lies in [from+timeout, to+timeout+slack].
func within(t *testing.T, ctx context.Context, from, to time.Time, timeout, slack time.Duration) {
	t.Helper()
	d, ok := ctx.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	if d.Before(from.Add(timeout)) || d.After(to.Add(timeout+slack)) {
		t.Fatalf("deadline %v after the call, want %v to %v", d.Sub(from), timeout, to.Sub(from)+timeout+slack)
	}
}

func TestBackgroundCallsShareOneDeadline(t *testing.T) {
	var s Shared
	// An hour's slack is 3.6s: a stalled machine still makes both calls
	// within it.
	const timeout = time.Hour
	from := time.Now()
	a, cancelA := s.Bound(context.Background(), timeout)
	defer cancelA()
	b, cancelB := s.Bound(context.Background(), timeout)
	defer cancelB()
	to := time.Now()
	within(t, a, from, to, timeout, slack(timeout))
	within(t, b, from, to, timeout, slack(timeout))
	if a.Done() != b.Done() {
		t.Fatal("two calls within the slack got contexts of their own")
	}
}

func TestSharedDeadlineIsRenewedAndNeverShort(t *testing.T) {
	var s Shared
	const timeout = 200 * time.Millisecond // slack: 2ms
	slack := timeout / 100
	a, _ := s.Bound(context.Background(), timeout)
	time.Sleep(3 * slack)
	from := time.Now()
	b, _ := s.Bound(context.Background(), timeout)
	within(t, b, from, time.Now(), timeout, slack)
	if a.Done() == b.Done() {
		t.Fatal("a call past the slack got the earlier, shorter deadline")
	}
}

func TestSharedDeadlineEnds(t *testing.T) {
	var s Shared
	ctx, cancel := s.Bound(context.Background(), 20*time.Millisecond)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the shared context did not end")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want DeadlineExceeded", ctx.Err())
	}
}

type key struct{}

func TestSharedDeadlineCarriesTheCallersValues(t *testing.T) {
	var s Shared
	plain, _ := s.Bound(context.Background(), time.Hour)
	ctx, _ := s.Bound(context.WithValue(context.Background(), key{}, "v"), time.Hour)
	if got := ctx.Value(key{}); got != "v" {
		t.Fatalf("Value = %v, want the caller's v", got)
	}
	if ctx.Done() != plain.Done() {
		t.Fatal("a call with values but no deadline got a timer of its own")
	}
}

func TestEarlierDeadlineIsKept(t *testing.T) {
	var s Shared
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ctx, done := s.Bound(parent, time.Minute)
	defer done()
	if ctx != parent {
		t.Fatal("a context with an earlier deadline was wrapped")
	}
}

func TestCancellableContextGetsItsOwnTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent func() (context.Context, context.CancelFunc)
	}{
		{"no deadline", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"later deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Shared
			parent, cancelParent := tc.parent()
			from := time.Now()
			ctx, cancel := s.Bound(parent, time.Minute)
			defer cancel()
			within(t, ctx, from, time.Now(), time.Minute, 0)
			cancelParent()
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("cancelling the caller's context did not end the call's")
			}
		})
	}
}

// A context derived from a shared one that carries values registers with
// the shared context instead of starting a goroutine to watch it, and ends
// with it.
func TestDerivedFromSharedWithValuesNeedsNoGoroutine(t *testing.T) {
	var s Shared
	ctx, _ := s.Bound(context.WithValue(context.Background(), key{}, "v"), time.Hour)
	// A goroutine may start or end meanwhile (a timer of another test
	// firing): a watcher would show in every attempt, as it lives an hour.
	for attempt := 1; ; attempt++ {
		before := runtime.NumGoroutine()
		stop := context.AfterFunc(ctx, func() {})
		after := runtime.NumGoroutine()
		stop()
		if after == before {
			break
		}
		if attempt == 5 {
			t.Fatalf("%d goroutines after context.AfterFunc, %d before, in %d attempts", after, before, attempt)
		}
		time.Sleep(20 * time.Millisecond) // a stopped watcher exits
	}
	if got := ctx.Value(struct{ other int }{}); got != nil {
		t.Fatalf("a key neither context holds has value %v", got)
	}
	short, _ := new(Shared).Bound(context.WithValue(context.Background(), key{}, "v"), 20*time.Millisecond)
	ended := make(chan struct{})
	defer context.AfterFunc(short, func() { close(ended) })()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the derived context did not end with the shared one")
	}
}

// However long the timeout, at most about a thousand shared contexts are
// alive at once: the slack grows with it.
func TestSlackBoundsTheLiveTimers(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{100 * time.Millisecond, time.Millisecond},
		{5 * time.Second, Slack},
		{time.Hour, 3600 * time.Millisecond},
	} {
		if got := slack(tc.timeout); got != tc.want {
			t.Errorf("slack(%v) = %v, want %v", tc.timeout, got, tc.want)
		}
		if live := tc.timeout / slack(tc.timeout); live > 1000 {
			t.Errorf("timeout %v: %d shared contexts alive at once", tc.timeout, live)
		}
	}
}

// detached passes values on from a cancellable parent but cannot itself
// be cancelled, as some libraries' "detached" contexts do.
type detached struct{ context.Context }

func (detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (detached) Done() <-chan struct{}       { return nil }
func (detached) Err() error                  { return nil }

// Such a call gets the shared deadline's cause, not its parent's.
func TestSharedDeadlineCauseIsItsOwn(t *testing.T) {
	var s Shared
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	ctx, _ := s.Bound(detached{parent}, 20*time.Millisecond)
	if got := ctx.Value(key{}); got != "v" {
		t.Fatalf("Value = %v, want the caller's v", got)
	}
	<-ctx.Done()
	if got := context.Cause(ctx); !errors.Is(got, context.DeadlineExceeded) {
		t.Fatalf("Cause = %v, want the shared deadline's", got)
	}
}
