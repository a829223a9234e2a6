package worker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/retry"
)

// Sentinel errors, re-exported from package broker. Test with errors.Is.
var (
	ErrNotFound    = broker.ErrNotFound
	ErrDuplicate   = broker.ErrDuplicate
	ErrQueueFull   = broker.ErrQueueFull
	ErrQueuePaused = broker.ErrQueuePaused
	ErrLeaseLost   = broker.ErrLeaseLost
	ErrClosed      = broker.ErrClosed
	ErrInvalidJob  = broker.ErrInvalidJob
	ErrWrongState  = broker.ErrWrongState
)

// DuplicateError names the job that holds a rejected job's id or unique key.
type DuplicateError = broker.DuplicateError

// InvalidError names the field that failed validation.
type InvalidError = broker.InvalidError

// JobError is an error about one job: the seed's JobError.
type JobError struct {
	JobID string
	Type  string
	// Queue, when set, is the queue the job was being added to or read
	// from.
	Queue string
	Op    string // what was being done: "add", "get", "cancel", "process", …
	Err   error
}

// Error says what was being done to which job, then why it failed. A job
// being added names its id only if the caller chose it: a generated id was
// never stored, so it would point at nothing.
func (e *JobError) Error() string {
	var b strings.Builder
	b.WriteString("worker: ")
	b.WriteString(e.Op)
	b.WriteString(" job")
	switch {
	case e.JobID != "" && e.Type != "":
		fmt.Fprintf(&b, " %s (%s)", e.JobID, e.Type)
	case e.JobID != "":
		fmt.Fprintf(&b, " %s", e.JobID)
	case e.Type != "":
		fmt.Fprintf(&b, " of type %q", e.Type)
	}
	if e.Queue != "" {
		prep := "in"
		if e.Op == "add" {
			prep = "to"
		}
		fmt.Fprintf(&b, " %s %q", prep, e.Queue)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *JobError) Unwrap() error { return e.Err }

// QueueError is an error about a queue: the seed's QueueError.
type QueueError struct {
	Queue string
	Op    string
	Err   error
}

// Error says what was being done to which queue, then why it failed. An
// invalid queue name is left to the cause, which quotes it.
func (e *QueueError) Error() string {
	if e.Queue == "" {
		return fmt.Sprintf("worker: %s queue: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("worker: %s queue %q: %v", e.Op, e.Queue, e.Err)
}

// Unwrap returns the cause.
func (e *QueueError) Unwrap() error { return e.Err }

// WorkerError is an error of a Manager itself: the seed's WorkerError.
type WorkerError struct {
	WorkerID string
	Op       string
	Err      error
}

func (e *WorkerError) Error() string {
	return fmt.Sprintf("worker: %s (worker %s): %v", e.Op, e.WorkerID, e.Err)
}

// Unwrap returns the cause.
func (e *WorkerError) Unwrap() error { return e.Err }

// NoRetry wraps err so that the Manager moves the job to dead at once,
// whatever attempts are left (for errors a retry cannot fix, such as a
// malformed payload). It is retry.NoRetry: the same marker stops
// retry.Manager.Retry and makes a recovery.Policy fail the job, so there is
// one way to say "do not retry". NoRetry(nil) is an error too.
func NoRetry(err error) error { return retry.NoRetry(err) }

// retryAfterError asks for a retry after a given delay.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter wraps err so that the Manager retries the job after d instead
// of the backoff policy's delay (for example when a remote service says
// when to come back). Attempts are still counted.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	if d < 0 {
		d = 0
	}
	return &retryAfterError{err: err, delay: d}
}

// rejection returns the part of a broker error that says why a job was
// refused (a *DuplicateError, an *InvalidError, or the queue-full reason),
// without the broker's own account of what it was doing: the worker's
// error says that, once. Other errors (the broker is down or closed) are
// returned whole.
func rejection(err error) error {
	for _, target := range []error{ErrDuplicate, ErrInvalidJob, ErrQueueFull} {
		if !errors.Is(err, target) {
			continue
		}
		for {
			next := errors.Unwrap(err)
			if next == nil || next == target || !errors.Is(next, target) {
				return err
			}
			err = next
		}
	}
	return err
}
