package redisbroker

import (
	"context"
	"fmt"
	"sync"

	"github.com/aibos/worker/broker"
)

// Concurrent JobInsert calls on one queue are combined, as a database
// combines concurrent commits: while one insert script call of a queue is
// in flight, the calls that arrive wait, and when it returns they go
// together in one call of lua/insert.lua in 'each' mode, every job checked
// and stored on its own, with its own outcome. A lone caller never waits:
// its call goes at once, alone. A script call costs Redis a few
// microseconds whatever it carries, and the request around it more, so 32
// goroutines adding jobs one by one cost Redis per job what a batch does.
//
// No library does this for go-redis (it pipelines explicit batches only),
// hence this file.

// maxCombined bounds the jobs of one combined script call.
const maxCombined = 256

// insertQueue is one queue's combining state.
type insertQueue struct {
	mu      sync.Mutex
	busy    bool         // a script call of this queue is in flight
	waiting []*insertReq // calls that arrived meanwhile, in order
}

// insertReq is one waiting JobInsert call.
type insertReq struct {
	p    *broker.JobInsertParams
	job  *broker.Job
	err  error
	done chan struct{} // closed when job or err is set
}

func (b *Broker) insertQueue(queue string) *insertQueue {
	if q, ok := b.inserts.Load(queue); ok {
		return q.(*insertQueue)
	}
	q, _ := b.inserts.LoadOrStore(queue, &insertQueue{})
	return q.(*insertQueue)
}

// combinedInsert stores one validated job, alone or combined with the
// concurrent calls of its queue.
func (b *Broker) combinedInsert(ctx context.Context, p *broker.JobInsertParams) (*broker.Job, error) {
	q := b.insertQueue(p.Queue)
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		jobs, errs, err := b.insert(ctx, []*broker.JobInsertParams{p}, true)
		b.insertNext(q)
		if err != nil {
			return nil, err
		}
		if errs[0] != nil {
			return nil, errs[0]
		}
		return jobs[0], nil
	}
	r := &insertReq{p: p, done: make(chan struct{})}
	q.waiting = append(q.waiting, r)
	q.mu.Unlock()
	select {
	case <-r.done:
		return r.job, r.err
	case <-ctx.Done():
	}
	q.mu.Lock()
	for i, w := range q.waiting {
		if w == r { // not sent: nothing is written
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			q.mu.Unlock()
			return nil, ctx.Err()
		}
	}
	q.mu.Unlock()
	// Already sent: its outcome is on the way (the call is bounded by the
	// client's read timeout). Waiting for it tells the caller the truth.
	<-r.done
	return r.job, r.err
}

// insertNext ends a queue's script call: the calls that waited meanwhile
// go next, in one call from a goroutine of their own, or the queue is idle.
func (b *Broker) insertNext(q *insertQueue) {
	q.mu.Lock()
	if len(q.waiting) == 0 {
		q.busy = false
		q.mu.Unlock()
		return
	}
	n := min(len(q.waiting), maxCombined)
	batch := make([]*insertReq, n)
	copy(batch, q.waiting)
	q.waiting = append(q.waiting[:0], q.waiting[n:]...)
	q.mu.Unlock()
	b.flightMu.Lock()
	if b.landed {
		b.flightMu.Unlock()
		for _, r := range batch { // nothing was sent
			r.err = fmt.Errorf("%w: it closed before the job was sent", broker.ErrClosed)
			close(r.done)
		}
		b.insertNext(q)
		return
	}
	b.flights.Add(1)
	b.flightMu.Unlock()
	go func() {
		defer b.flights.Done()
		b.insertBatch(batch)
		b.insertNext(q)
	}()
}

// insertBatch sends the waiting calls of one queue in one script call and
// hands each its outcome. The callers' contexts are their own: the call
// runs on a background one, bounded by the client's timeouts.
func (b *Broker) insertBatch(batch []*insertReq) {
	ps := make([]*broker.JobInsertParams, len(batch))
	for i, r := range batch {
		ps[i] = r.p
	}
	jobs, errs, err := b.insert(context.Background(), ps, true)
	for i, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case errs[i] != nil:
			r.err = errs[i]
		default:
			r.job = jobs[i]
		}
		close(r.done)
	}
}
