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
	// job inserted after the caller's last fetch and before this call wakes
	// it at once. Jobs that become pending otherwise (retries, recovered
	// leases, hand-backs) may be noticed only at the timeout. Safe for
	// concurrent use. Returns ctx.Err() if ctx ends first, ErrClosed after
	// Close, and other errors when the broker cannot wait (the caller then
	// falls back to polling).
	JobWait(ctx context.Context, queues []string, timeout time.Duration) error
}
