package combine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errClosed = errors.New("closed")

// recorder is a Run that doubles each item, fails odd ones when told to,
// records its batches and can be held until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{} // when not nil, each batch waits for a receive
	entered chan struct{} // when not nil, told when a batch starts
	failOdd bool
}

func (r *recorder) run(ctx context.Context, batch []int) ([]int, []error, error) {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), batch...))
	hold, entered := r.hold, r.entered
	r.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	out := make([]int, len(batch))
	errs := make([]error, len(batch))
	for i, p := range batch {
		if r.failOdd && p%2 == 1 {
			errs[i] = fmt.Errorf("item %d refused", p)
			continue
		}
		out[i] = 2 * p
	}
	return out, errs, nil
}

// waitQueued waits until n calls of key wait behind the one in flight.
func waitQueued(t *testing.T, g *Group[int, int], key string, n int) {
	t.Helper()
	q := g.queue(key)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		got := len(q.waiting)
		q.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls waiting for %q, want %d", got, key, n)
		}
	}
}

func TestLoneCallGoesAtOnceAlone(t *testing.T) {
	r := &recorder{}
	g := New(8, errClosed, r.run)
	defer g.Close()
	for i := range 3 {
		got, err := g.Do(context.Background(), "q", i)
		if err != nil || got != 2*i {
			t.Fatalf("Do(%d) = %d, %v", i, got, err)
		}
	}
	if len(r.batches) != 3 {
		t.Fatalf("batches %v, want three of one", r.batches)
	}
}

func TestWaitingCallsGoInOneBatchWithTheirOwnOutcome(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), entered: make(chan struct{}, 16), failOdd: true}
	g := New(4, errClosed, r.run)
	defer g.Close()
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { _, err := g.Do(ctx, "q", 100); first <- err }()
	<-r.entered // the lone call is in flight and held
	type res struct {
		p, got int
		err    error
	}
	results := make(chan res, 6)
	for p := 1; p <= 6; p++ {
		go func() { got, err := g.Do(ctx, "q", p); results <- res{p, got, err} }()
	}
	waitQueued(t, g, "q", 6) // all six behind the held call
	// Release the lone call, then the two batches it leaves (at most 4 each).
	r.hold <- struct{}{}
	<-r.entered
	r.hold <- struct{}{}
	<-r.entered
	r.hold <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range 6 {
		x := <-results
		if x.p%2 == 1 {
			if x.err == nil || x.err.Error() != fmt.Sprintf("item %d refused", x.p) {
				t.Fatalf("item %d: %d, %v; want its own refusal", x.p, x.got, x.err)
			}
		} else if x.err != nil || x.got != 2*x.p {
			t.Fatalf("item %d: %d, %v", x.p, x.got, x.err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 3 || len(r.batches[0]) != 1 || len(r.batches[1]) != 4 || len(r.batches[2]) != 2 {
		t.Fatalf("batches %v, want [100] then 4 then 2", r.batches)
	}
	for _, p := range append(append([]int(nil), r.batches[1]...), r.batches[2]...) {
		if p < 1 || p > 6 {
			t.Fatalf("batch item %d is not one of the waiting calls", p)
		}
	}
}

func TestCancelledWaiterIsNotSent(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	g := New(8, errClosed, r.run)
	defer g.Close()
	go g.Do(context.Background(), "q", 1)
	<-r.entered
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.Do(ctx, "q", 2); errc <- err }()
	waitQueued(t, g, "q", 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	r.hold <- struct{}{}
	// The queue is idle again: a new call goes alone.
	r.mu.Lock()
	r.hold, r.entered = nil, nil
	r.mu.Unlock()
	if got, err := g.Do(context.Background(), "q", 3); err != nil || got != 6 {
		t.Fatalf("Do(3) = %d, %v", got, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		for _, p := range b {
			if p == 2 {
				t.Fatalf("the cancelled call was sent: batches %v", r.batches)
			}
		}
	}
}

func TestCloseFailsWaitersAndWaitsForFlights(t *testing.T) {
	r := &recorder{hold: make(chan struct{}), entered: make(chan struct{}, 4)}
	g := New(8, errClosed, r.run)
	leader := make(chan error, 1)
	go func() { _, err := g.Do(context.Background(), "q", 1); leader <- err }()
	<-r.entered
	waiter := make(chan error, 1)
	go func() { _, err := g.Do(context.Background(), "q", 2); waiter <- err }()
	waitQueued(t, g, "q", 1)
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	time.Sleep(10 * time.Millisecond)
	r.hold <- struct{}{} // the leader's call returns
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if err := <-waiter; !errors.Is(err, errClosed) {
		t.Fatalf("waiter after Close: %v, want the closed error", err)
	}
	<-closed
}

// Under load every call gets its own result and batches stay within max.
func TestManyConcurrentCalls(t *testing.T) {
	var calls atomic.Int64
	var maxSeen atomic.Int64
	g := New(16, errClosed, func(ctx context.Context, batch []int) ([]int, []error, error) {
		calls.Add(1)
		if n := int64(len(batch)); n > maxSeen.Load() {
			maxSeen.Store(n)
		}
		time.Sleep(100 * time.Microsecond)
		out := make([]int, len(batch))
		for i, p := range batch {
			out[i] = p + 1
		}
		return out, nil, nil
	})
	defer g.Close()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p := w*1000 + i
				if got, err := g.Do(context.Background(), fmt.Sprintf("q%d", w%2), p); err != nil || got != p+1 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d calls got a wrong outcome", bad.Load())
	}
	if calls.Load() >= 32*50 || maxSeen.Load() > 16 {
		t.Fatalf("%d batches for %d calls, largest %d (max 16)", calls.Load(), 32*50, maxSeen.Load())
	}
}

// TestBatchContextEndsWhenEveryCallerGaveUp holds a batch of three calls,
// two under one context and one under another, and watches the context
// the batch runs under: it ends only once both contexts ended, and never
// while a call cannot give up.
func TestBatchContextEndsWhenEveryCallerGaveUp(t *testing.T) {
	for _, tc := range []struct {
		name       string
		background bool // a fourth call, under context.Background
	}{{"every caller can give up", false}, {"one caller cannot", true}} {
		t.Run(tc.name, func(t *testing.T) {
			hold := make(chan struct{})
			batchCtx := make(chan context.Context, 1)
			run := func(ctx context.Context, batch []int) ([]int, []error, error) {
				if batch[0] != 0 { // the batch behind the lone call
					batchCtx <- ctx
				}
				<-hold
				return make([]int, len(batch)), nil, nil
			}
			g := New(8, errClosed, run)
			defer g.Close()
			var release sync.Once
			defer release.Do(func() { close(hold) }) // before Close, on failure too
			lone := make(chan error, 1)
			go func() { _, err := g.Do(context.Background(), "q", 0); lone <- err }()
			waitBusy(t, g, "q")
			a, cancelA := context.WithCancel(context.Background())
			b, cancelB := context.WithCancel(context.Background())
			defer cancelA()
			defer cancelB()
			ctxs := []context.Context{a, a, b}
			if tc.background {
				ctxs = append(ctxs, context.Background())
			}
			done := make(chan error, len(ctxs))
			for i, ctx := range ctxs {
				go func() { _, err := g.Do(ctx, "q", i+1); done <- err }()
				waitQueued(t, g, "q", i+1) // in this order
			}
			hold <- struct{}{} // the lone call returns; the batch starts
			if err := <-lone; err != nil {
				t.Fatal(err)
			}
			ctx := <-batchCtx
			cancelA()
			for range 2 {
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Fatalf("a caller of a: %v, want context.Canceled", err)
				}
			}
			select {
			case <-ctx.Done():
				t.Fatal("the batch's context ended while b's caller still waits")
			case <-time.After(20 * time.Millisecond):
			}
			cancelB()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("b's caller: %v, want context.Canceled", err)
			}
			if tc.background {
				select {
				case <-ctx.Done():
					t.Fatal("the batch's context ended while a caller that cannot give up waits")
				case <-time.After(20 * time.Millisecond):
				}
			} else {
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the batch's context did not end once every caller gave up")
				}
			}
			release.Do(func() { close(hold) })
			if tc.background {
				if err := <-done; err != nil {
					t.Fatalf("the caller under context.Background: %v", err)
				}
			}
		})
	}
}

// waitBusy waits until a batch of key is in flight.
func waitBusy(t *testing.T, g *Group[int, int], key string) {
	t.Helper()
	q := g.queue(key)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		busy := q.busy
		q.mu.Unlock()
		if busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no batch of %q in flight", key)
		}
	}
}
