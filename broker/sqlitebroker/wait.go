package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/internal/wake"
)

var (
	_ broker.ReadyWaiter   = (*Broker)(nil)
	_ broker.PendingLister = (*Broker)(nil)
)

// waker wakes idle workers of this process when jobs are inserted. The
// store has one writer process (the file lock), so every insert passes
// through it and no wake is lost.
type waker struct {
	once sync.Once
	hub  *wake.Hub

	mu    sync.Mutex
	valid map[string]bool // queue names checked already
	// validAll is the last list of queues found all valid: comparing
	// with it (the same strings: their pointers match) costs a few µs
	// for a thousand, a map lookup per queue about 25.
	validAll []string
}

// check checks the names of queues not seen before: a Manager waits on
// the same thousand queues again and again.
func (w *waker) check(queues []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Equal(queues, w.validAll) {
		return nil
	}
	for _, q := range queues {
		if w.valid[q] {
			continue
		}
		if err := broker.ValidateQueueName(q); err != nil {
			return fmt.Errorf("%w: %v", broker.ErrInvalidJob, err)
		}
		if w.valid == nil {
			w.valid = map[string]bool{}
		}
		w.valid[q] = true
	}
	w.validAll = slices.Clone(queues)
	return nil
}

func (b *Broker) waker() *wake.Hub {
	b.wake.once.Do(func() { b.wake.hub = wake.New(b.nextDue) })
	return b.wake.hub
}

// JobWait blocks until one of queues may have a fetchable job, timeout
// passes or ctx ends; see broker.Waiter.
func (b *Broker) JobWait(ctx context.Context, queues []string, timeout time.Duration) error {
	_, err := b.JobWaitReady(ctx, queues, timeout)
	return err
}

// JobWaitReady is JobWait that names the queues woken; see
// broker.ReadyWaiter.
func (b *Broker) JobWaitReady(ctx context.Context, queues []string, timeout time.Duration) ([]string, error) {
	if b.closed.Load() {
		return nil, fmt.Errorf("wait for jobs: %w", broker.ErrClosed)
	}
	if err := b.wake.check(queues); err != nil {
		return nil, fmt.Errorf("wait for jobs: %w", err)
	}
	ready, err := b.waker().WaitReady(ctx, queues, timeout)
	switch {
	case errors.Is(err, wake.ErrClosed):
		return nil, fmt.Errorf("wait for jobs: %w", broker.ErrClosed)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("wait for jobs in %d queues: %w", len(queues), err)
	}
	return ready, nil
}

// QueuesPending returns the queues, among queues, that hold a pending job;
// see broker.PendingLister. One read, an index probe per queue, on a read
// connection: the write connection is left to fetches.
func (b *Broker) QueuesPending(ctx context.Context, queues []string) ([]string, error) {
	const op = "list queues with pending jobs"
	if b.closed.Load() {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrClosed)
	}
	if err := b.wake.check(queues); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out, err := b.queuesPending(ctx, queues)
	if err != nil {
		return nil, fmt.Errorf("%s among %d: %w", op, len(queues), err)
	}
	return out, nil
}

func (b *Broker) queuesPending(ctx context.Context, queues []string) ([]string, error) {
	names, err := json.Marshal(queues)
	if err != nil {
		return nil, err
	}
	rows, err := b.read.QueryContext(ctx, `SELECT q.value FROM json_each(?) AS q
		WHERE EXISTS (SELECT 1 FROM jobs WHERE queue = q.value AND state = 'pending')
		ORDER BY q.key`, string(names))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// notifyInserted wakes the waiters of the jobs' queue.
func (b *Broker) notifyInserted(jobs []*broker.Job) {
	if len(jobs) == 0 {
		return
	}
	now := b.opts.Now()
	soonest := time.Duration(-1)
	for _, j := range jobs {
		d := time.Duration(0)
		if j.State == broker.StateScheduled {
			d = max(j.RunAt.Sub(now), time.Millisecond)
		}
		if soonest < 0 || d < soonest {
			soonest = d
		}
	}
	b.waker().Notify(jobs[0].Queue, soonest)
}

// nextDue reads how long until each queue's earliest scheduled job is due;
// a paused queue has none.
func (b *Broker) nextDue(ctx context.Context, queues []string) (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, len(queues))
	for _, q := range queues {
		var due sql.NullInt64
		err := b.read.QueryRowContext(ctx,
			`SELECT MIN(run_at) FROM jobs WHERE queue = ? AND state = 'scheduled'
			 AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ? AND paused = 1)`, q, q).Scan(&due)
		if err != nil {
			return nil, fmt.Errorf("read next due time of %q: %w", q, err)
		}
		if due.Valid {
			out[q] = time.Duration(due.Int64-b.now()) * time.Millisecond
		}
	}
	return out, nil
}
