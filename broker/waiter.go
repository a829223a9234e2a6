package broker

import (
	"context"
	"time"
)

// Waiter is an optional capability of a Broker: instead of polling an empty
// queue on a timer, an idle worker calls JobWait and is woken as soon as
// work may be there. A Broker without it is polled every
// worker.ManagerConfig.PollInterval.
type Waiter interface {
	// JobWait blocks until a job of one of queues may be fetchable, then
	// returns nil: a job was inserted pending, or the earliest scheduled
	// job fell due. It also returns nil once timeout has passed. Wakes may
	// be spurious (the caller fetches and waits again), but none is lost: a
	// job inserted after the caller's last fetch drained the queue (leased
	// fewer jobs than asked) and before this call wakes it at once. A job
	// inserted behind others still pending need not wake anyone: whoever
	// drained the queue was woken by the first of them, and a caller whose
	// fetch leased all it asked for fetches again before it waits (on
	// Redis, where a wake reaches every worker process, that saves waking
	// them all for each job of a busy queue). Jobs that become pending
	// otherwise (retries, recovered leases, hand-backs) may be noticed only
	// at the timeout. Safe for
	// concurrent use. Returns ctx.Err() if ctx ends first, ErrClosed after
	// Close, and other errors when the broker cannot wait (the caller then
	// falls back to polling).
	JobWait(ctx context.Context, queues []string, timeout time.Duration) error
}

// ReadyWaiter is a Waiter that also says which queues woke it, so that a
// worker serving many queues fetches from those instead of trying each in
// turn (a round trip per queue).
type ReadyWaiter interface {
	Waiter
	// JobWaitReady is JobWait that returns the queues, among queues, that
	// may have a fetchable job: each queue a wake of JobWait's contract
	// came for (a job inserted pending, its earliest scheduled job due), in
	// the order of queues. A queue may be named spuriously, but a wake is
	// never lost: it names its queue in the call that returns for it, or,
	// if it came while no call waited, in the next call. It returns no
	// queue when it returned for the timeout. With timeout 0 it does not
	// wait: it returns the queues woken since the last call (none if no
	// wake came). Safe for concurrent use; errors are JobWait's.
	JobWaitReady(ctx context.Context, queues []string, timeout time.Duration) ([]string, error)
}

// PendingLister is an optional capability of a ReadyWaiter: it says which
// queues hold pending jobs, so that a worker starting on many queues
// fetches from those only. A ReadyWaiter's wakes cover what comes in after
// a worker first waits; without this capability the worker learns what
// was there before by fetching from each queue in turn, a round trip per
// queue (a thousand on SQLite: write transactions in front of the fetch of
// a job added meanwhile).
type PendingLister interface {
	// QueuesPending returns the queues, among queues, that hold a pending
	// job, in the order of queues. A paused queue may be named. A job that
	// becomes pending during the call may or may not make its queue named;
	// one inserted after the caller's JobWaitReady wakes it all the same.
	// Safe for concurrent use. Returns ErrInvalidJob for an invalid queue
	// name, ErrClosed after Close, and the error that stopped the read
	// otherwise (the caller then tries every queue).
	QueuesPending(ctx context.Context, queues []string) ([]string, error)
}

// WakeMuter is an optional capability of a ReadyWaiter whose wakes reach
// every worker process waiting on a queue (Redis pub/sub): a worker that
// leases full batches of a queue's short jobs fetches again within a
// millisecond or two anyway, and a wake per urgent insert, received by
// each of fifty such processes, costs them all a wake-up for nothing. The
// worker mutes the queue while that lasts, and unmutes it as soon as a
// fetch leases fewer jobs than asked.
type WakeMuter interface {
	// JobWaitMute stops this Broker's waits from hearing of queue's
	// wakes (mute true), or makes them hear of them again (mute false).
	// Mutes are counted: the wakes come back when every mute has been
	// undone, and every waiter of queue is then woken once, as when a
	// wake came, so that a job added while muted is fetched then; a job
	// falling due later is noticed too. Unmuting a queue not muted does
	// nothing. Safe for concurrent use; the change takes effect at the
	// store shortly after the call returns. Returns ErrInvalidJob for an
	// invalid queue name and ErrClosed after Close (the count unchanged);
	// a failure to reach the store is returned with the count changed
	// all the same (and, unmuting, the waiters woken).
	JobWaitMute(ctx context.Context, queue string, mute bool) error
}
