// Package combine combines concurrent calls into batches, as a database
// combines concurrent commits (group commit): while one call for a key is
// in flight, the calls for that key that arrive wait, and when it returns
// they go together in one batch, each keeping its own outcome. A lone call
// never waits: it goes at once, alone.
//
// The brokers use it for JobInsert: a script call or a transaction costs
// about the same whatever it carries, so many goroutines adding jobs one by
// one cost per job what a batch does. No library does this for go-redis or
// database/sql (they batch explicit batches only), hence this package.
package combine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Run stores a batch and returns each item's outcome: results[i] when
// errs[i] is nil. err, when not nil, is the outcome of every item.
type Run[P, R any] func(ctx context.Context, batch []P) (results []R, errs []error, err error)

// Group combines the calls of Do per key. Its zero value is not usable;
// use New.
type Group[P, R any] struct {
	run    Run[P, R]
	max    int
	closed error // the outcome of calls waiting when Close runs

	queues sync.Map // key → *queue[P, R]

	mu      sync.Mutex
	flights sync.WaitGroup // batches in flight on goroutines of their own
	done    bool           // Close ran: no new batches
}

// New returns a Group that sends at most max items per batch through run.
// Calls still waiting when Close runs get closedErr; nothing of theirs was
// sent.
func New[P, R any](max int, closedErr error, run Run[P, R]) *Group[P, R] {
	return &Group[P, R]{run: run, max: max, closed: closedErr}
}

type queue[P, R any] struct {
	mu      sync.Mutex
	busy    bool          // a batch of this key is in flight
	waiting []*call[P, R] // calls that arrived meanwhile, in order
}

type call[P, R any] struct {
	ctx  context.Context
	p    P
	r    R
	err  error
	done chan struct{} // closed when r or err is set
}

func (g *Group[P, R]) queue(key string) *queue[P, R] {
	if q, ok := g.queues.Load(key); ok {
		return q.(*queue[P, R])
	}
	q, _ := g.queues.LoadOrStore(key, &queue[P, R]{})
	return q.(*queue[P, R])
}

// Do stores p, alone or in a batch with the concurrent calls of key, and
// returns its own outcome. If ctx ends while p waits, Do returns ctx.Err()
// and p is not stored. If ctx ends once p's batch is sent, Do returns at
// once an error wrapping ctx.Err() that says p may be stored, as a lone
// call that timed out after sending would: the batch goes on for the
// others, its context ending only when every caller in it has given up.
func (g *Group[P, R]) Do(ctx context.Context, key string, p P) (R, error) {
	q := g.queue(key)
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		rs, errs, err := g.run(ctx, []P{p})
		g.next(q)
		var zero R
		if err != nil {
			return zero, err
		}
		if errs != nil && errs[0] != nil {
			return zero, errs[0]
		}
		return rs[0], nil
	}
	c := &call[P, R]{ctx: ctx, p: p, done: make(chan struct{})}
	q.waiting = append(q.waiting, c)
	q.mu.Unlock()
	select {
	case <-c.done:
		return c.r, c.err
	case <-ctx.Done():
	}
	q.mu.Lock()
	for i, w := range q.waiting {
		if w == c { // not sent: nothing is stored
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			q.mu.Unlock()
			var zero R
			return zero, ctx.Err()
		}
	}
	q.mu.Unlock()
	select {
	case <-c.done:
		return c.r, c.err
	default:
		var zero R
		return zero, fmt.Errorf("%w: the job was sent in a batch whose outcome is not known yet: it may be stored", ctx.Err())
	}
}

// next ends a batch of q: the calls that waited meanwhile go next, in
// batches run one after another on a goroutine of its own, or q is idle.
// One goroutine serves batches while calls keep arriving, rather than one
// per batch: a goroutine's stack grew anew for each batch down the
// broker's client (morestack was 2% of a 32-goroutine Add's CPU).
func (g *Group[P, R]) next(q *queue[P, R]) {
	batch := g.take(q, true)
	if batch == nil {
		return
	}
	go func() {
		defer g.flights.Done()
		for ; batch != nil; batch = g.take(q, false) {
			g.send(batch)
		}
	}()
}

// take returns the next batch of q, at most max of the calls that waited,
// or nil when none did: q is then idle. With flight, a batch taken counts
// as a flight Close waits for. After Close, the waiting calls get the
// closed error and are not sent.
func (g *Group[P, R]) take(q *queue[P, R], flight bool) []*call[P, R] {
	for {
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.busy = false
			q.mu.Unlock()
			return nil
		}
		n := min(len(q.waiting), g.max)
		batch := make([]*call[P, R], n)
		copy(batch, q.waiting)
		q.waiting = append(q.waiting[:0], q.waiting[n:]...)
		q.mu.Unlock()
		g.mu.Lock()
		if !g.done {
			if flight {
				g.flights.Add(1)
			}
			g.mu.Unlock()
			return batch
		}
		g.mu.Unlock()
		for _, c := range batch {
			c.err = g.closed
			close(c.done)
		}
	}
}

// send runs one batch and hands each call its outcome.
func (g *Group[P, R]) send(batch []*call[P, R]) {
	ps := make([]P, len(batch))
	for i, c := range batch {
		ps[i] = c.p
	}
	ctx, cancel := batchContext(batch)
	rs, errs, err := g.run(ctx, ps)
	cancel()
	for i, c := range batch {
		switch {
		case err != nil:
			c.err = err
		case errs != nil && errs[i] != nil:
			c.err = errs[i]
		default:
			c.r = rs[i]
		}
		close(c.done)
	}
}

// batchContext returns a context that ends once every call of batch has
// given up (its context ended): the batch is worth sending until then. It
// never ends if a call cannot give up (its context has no Done channel).
// Calls whose contexts share a Done channel give up together: they are
// watched once (a Client's calls share one deadline; see ctxdeadline).
func batchContext[P, R any](batch []*call[P, R]) (context.Context, context.CancelFunc) {
	watch := make([]context.Context, 0, 2)
	dones := make([]<-chan struct{}, 0, 2)
	for _, c := range batch {
		d := c.ctx.Done()
		if d == nil {
			return context.Background(), func() {}
		}
		if !slices.Contains(dones, d) {
			dones = append(dones, d)
			watch = append(watch, c.ctx)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(watch)))
	stops := make([]func() bool, len(watch))
	for i, w := range watch {
		stops[i] = context.AfterFunc(w, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// Close stops new batches (calls still waiting get the closed error) and
// waits for the batches in flight.
func (g *Group[P, R]) Close() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
	g.flights.Wait()
}
