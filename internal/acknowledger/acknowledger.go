// Package acknowledger writes a Manager's job completions to the broker in
// batches: whatever has queued up while one batch was being written goes in
// the next, so batching costs no latency when the Manager is idle and saves
// round trips when it is busy. A job's slot can be freed as soon as its
// completion is queued; a crash before the write only makes the job run
// again (delivery is at least once).
//
// When the broker can acknowledge completions and lease jobs in one round
// trip (a broker.CompleteFetcher), a busy Manager's completions go with its
// next fetch instead (Fetch): the fetcher says when one is coming (Expect),
// and the completions queued meanwhile wait for it rather than take a round
// trip of their own; for HoldMax at most while the fetch waits for a slot
// to free. Whenever no fetch is coming, they are written at once, as
// without the capability.
package acknowledger

import (
	"context"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
)

// MaxBatch caps the completions of one broker call.
const MaxBatch = 256

// HoldMax bounds how long a completion waits for a fetch that waits for a
// slot to free (FetchAfterSlot) before it is written on its own: about as
// long as a busy Manager lets free slots add up before it fetches, so that
// a fetch that comes takes it, and one that does not (every slot taken by
// jobs that run on) costs it no more.
const HoldMax = 2 * time.Millisecond

// Expectation is what the fetcher expects of its next fetch (Expect).
type Expectation int

const (
	// FetchNone: no fetch is coming (the fetcher waits for work, for the
	// broker, or has stopped); completions are written at once.
	FetchNone Expectation = iota
	// FetchSoon: a fetch is under way or follows within moments;
	// completions wait for it.
	FetchSoon
	// FetchAfterSlot: a fetch follows once a run slot frees, which
	// every completion does, but the jobs running may run on; completions
	// wait for it HoldMax at most.
	FetchAfterSlot
)

// Request is one completion to write.
type Request struct {
	Params *broker.JobCompleteParams
	// Done is told, from the Acknowledger's goroutine or from the
	// goroutine of the Fetch that sent it, the outcome of this job's
	// completion: nil, or the broker's per-job or whole-call error.
	Done Doner
}

// Doner is told the outcome of one completion. An interface rather than
// a func, so that the Manager passes its job record as it is, where a
// closure per job was one more allocation.
type Doner interface {
	Acked(err error)
}

// DoneFunc adapts a function to a Doner.
type DoneFunc func(err error)

// Acked calls f(err).
func (f DoneFunc) Acked(err error) { f(err) }

// Acknowledger batches completions. Start it once; Add from any goroutine
// until Stop, which flushes what is queued.
type Acknowledger struct {
	b     broker.Broker
	cf    broker.CompleteFetcher // nil: completions never wait for a fetch
	limit int                    // queued completions before Add blocks

	mu    sync.Mutex
	space sync.Cond // signalled when completions leave a full queue
	queue []Request
	// expect is the fetcher's Expectation; flush counts the queued
	// completions the writer takes all the same (HoldMax passed: expire,
	// armed while completions wait under FetchAfterSlot).
	expect   Expectation
	flush    int
	expire   *time.Timer
	armed    bool
	waiters  int  // Adds blocked on a full queue
	stopping bool // Stop was called: write everything, then end
	kick     chan struct{}
	done     chan struct{}

	// Reused by Fetch, which one goroutine calls at a time: the
	// completions of its last call and their outcomes, until Settle.
	fetchBatch []Request
	fetchPs    []*broker.JobCompleteParams
	fetchErrs  []error
}

// New returns an Acknowledger writing to b that queues up to buffer
// completions before Add blocks.
func New(b broker.Broker, buffer int) *Acknowledger {
	a := &Acknowledger{b: b, limit: max(buffer, 1), kick: make(chan struct{}, 1), done: make(chan struct{})}
	a.cf, _ = b.(broker.CompleteFetcher)
	a.space.L = &a.mu
	a.expire = time.AfterFunc(time.Hour, a.holdExpired)
	a.expire.Stop()
	return a
}

// Start writes queued completions in the background.
func (a *Acknowledger) Start() { go a.run() }

// Add queues a completion. It blocks while the queue is full. It must not
// be called after Stop.
func (a *Acknowledger) Add(r Request) {
	a.mu.Lock()
	for len(a.queue) >= a.limit {
		a.waiters++
		a.space.Wait()
		a.waiters--
	}
	a.queue = append(a.queue, r)
	a.arm()
	w := a.writable()
	a.mu.Unlock()
	if w {
		a.wake()
	}
}

// Expect says whether a fetch that will take the queued completions
// (Fetch) is coming: while one is, they wait for it (unless a full batch
// has queued up, or HoldMax passed under FetchAfterSlot); with FetchNone
// they are written at once, those queued already included. The fetcher
// calls it before every wait. Without a broker.CompleteFetcher it does
// nothing.
func (a *Acknowledger) Expect(e Expectation) {
	if a.cf == nil {
		return
	}
	a.mu.Lock()
	a.expect = e
	if e != FetchAfterSlot && a.armed {
		a.armed = false
		a.expire.Stop()
	}
	a.arm()
	w := a.writable()
	a.mu.Unlock()
	if w {
		a.wake()
	}
}

// arm starts the HoldMax timer when completions wait for a fetch that
// waits for a slot and it is not running; a.mu is held.
func (a *Acknowledger) arm() {
	if a.expect == FetchAfterSlot && len(a.queue) > 0 && !a.armed {
		a.armed = true
		a.expire.Reset(HoldMax)
	}
}

// holdExpired has the waiting completions written: no slot freed for a
// fetch within HoldMax.
func (a *Acknowledger) holdExpired() {
	a.mu.Lock()
	if a.armed && a.expect == FetchAfterSlot {
		a.flush = len(a.queue)
	}
	a.armed = false
	w := a.writable()
	a.mu.Unlock()
	if w {
		a.wake()
	}
}

// Fetch leases jobs as b.JobFetch(ctx, p) does. With a
// broker.CompleteFetcher, the completions queued (up to a batch) go in the
// same call; Settle then tells each Done its outcome, as the writer would,
// so that the caller may start the jobs leased first. Fetch and Settle may
// be called by one goroutine at a time, Settle after every Fetch, and
// neither after Stop.
func (a *Acknowledger) Fetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	if a.cf == nil {
		return a.b.JobFetch(ctx, p)
	}
	a.mu.Lock()
	a.fetchBatch = a.take(a.fetchBatch[:0])
	a.mu.Unlock()
	if len(a.fetchBatch) == 0 {
		return a.b.JobFetch(ctx, p)
	}
	ps := a.fetchPs[:0]
	for _, r := range a.fetchBatch {
		ps = append(ps, r.Params)
	}
	res, err := a.cf.JobCompleteFetch(ctx, ps, p)
	clear(ps)
	a.fetchPs = ps
	errs := a.fetchErrs[:0]
	for i := range a.fetchBatch {
		errs = append(errs, res.CompleteErrOf(i, err))
	}
	a.fetchErrs = errs
	if err != nil {
		return nil, err
	}
	return res.Jobs, res.FetchErr
}

// Settle tells the Done of each completion the last Fetch sent its
// outcome.
func (a *Acknowledger) Settle() {
	for i, r := range a.fetchBatch {
		r.Done.Acked(a.fetchErrs[i])
	}
	clear(a.fetchBatch) // let the written jobs' records go
	clear(a.fetchErrs)
	a.fetchBatch, a.fetchErrs = a.fetchBatch[:0], a.fetchErrs[:0]
}

// Stop writes every queued completion, calls their Done, and returns.
func (a *Acknowledger) Stop() {
	a.mu.Lock()
	a.stopping = true
	a.armed = false
	a.expire.Stop()
	a.mu.Unlock()
	a.wake()
	<-a.done
}

// writable reports whether the writer has completions to write now; a.mu
// is held.
func (a *Acknowledger) writable() bool {
	return len(a.queue) > 0 && (a.expect == FetchNone || a.flush > 0 || len(a.queue) >= MaxBatch || a.stopping)
}

// wake wakes the writer; it never blocks.
func (a *Acknowledger) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// take moves up to MaxBatch queued completions, oldest first, to batch
// and returns it; a.mu is held.
func (a *Acknowledger) take(batch []Request) []Request {
	n := min(len(a.queue), MaxBatch)
	batch = append(batch, a.queue[:n]...)
	rest := copy(a.queue, a.queue[n:])
	clear(a.queue[rest:])
	a.queue = a.queue[:rest]
	a.flush = max(a.flush-n, 0)
	if len(a.queue) == 0 && a.armed {
		a.armed = false
		a.expire.Stop()
	}
	if a.waiters > 0 && n > 0 {
		a.space.Broadcast()
	}
	return batch
}

func (a *Acknowledger) run() {
	defer close(a.done)
	// Reused from batch to batch: one goroutine writes them, and write
	// is done with them when it returns.
	var batch []Request
	var ps []*broker.JobCompleteParams
	for {
		a.mu.Lock()
		for !a.writable() {
			if a.stopping {
				a.mu.Unlock()
				return
			}
			a.mu.Unlock()
			<-a.kick
			a.mu.Lock()
		}
		batch = a.take(batch[:0])
		a.mu.Unlock()
		ps = a.write(batch, ps[:0])
		clear(batch) // let the written jobs' records go
	}
}

// write writes batch, its params appended to ps, which it returns for
// the next batch.
func (a *Acknowledger) write(batch []Request, ps []*broker.JobCompleteParams) []*broker.JobCompleteParams {
	for _, r := range batch {
		ps = append(ps, r.Params)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	errs, err := a.b.JobComplete(ctx, ps)
	cancel()
	for i, r := range batch {
		ackErr := err
		if ackErr == nil && i < len(errs) {
			ackErr = errs[i]
		}
		r.Done.Acked(ackErr)
	}
	clear(ps)
	return ps
}
