// Package acknowledger writes a Manager's job completions to the broker in
// batches: whatever has queued up while one batch was being written goes in
// the next, so batching costs no latency when the Manager is idle and saves
// round trips when it is busy. A job's slot can be freed as soon as its
// completion is queued; a crash before the write only makes the job run
// again (delivery is at least once).
package acknowledger

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// MaxBatch caps the completions of one broker call.
const MaxBatch = 256

// Request is one completion to write.
type Request struct {
	Params *broker.JobCompleteParams
	// Done is told, from the Acknowledger's goroutine, the outcome of
	// this job's completion: nil, or the broker's per-job or whole-call
	// error.
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
	b    broker.Broker
	reqs chan Request
	done chan struct{}
}

// New returns an Acknowledger writing to b that queues up to buffer
// completions before Add blocks.
func New(b broker.Broker, buffer int) *Acknowledger {
	return &Acknowledger{b: b, reqs: make(chan Request, buffer), done: make(chan struct{})}
}

// Start writes queued completions in the background.
func (a *Acknowledger) Start() { go a.run() }

// Add queues a completion. It blocks while the queue is full. It must not
// be called after Stop.
func (a *Acknowledger) Add(r Request) { a.reqs <- r }

// Stop writes every queued completion, calls their Done, and returns.
func (a *Acknowledger) Stop() {
	close(a.reqs)
	<-a.done
}

func (a *Acknowledger) run() {
	defer close(a.done)
	// Reused from batch to batch: one goroutine writes them, and write
	// is done with them when it returns.
	var batch []Request
	var ps []*broker.JobCompleteParams
	for first := range a.reqs {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < MaxBatch {
			select {
			case r, ok := <-a.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
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
