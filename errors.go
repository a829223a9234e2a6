package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
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
	Op    string // what was being done: "add", "get", "cancel", "process", …
	Err   error
}

func (e *JobError) Error() string {
	switch {
	case e.JobID != "" && e.Type != "":
		return fmt.Sprintf("worker: %s job %s (%s): %v", e.Op, e.JobID, e.Type, e.Err)
	case e.JobID != "":
		return fmt.Sprintf("worker: %s job %s: %v", e.Op, e.JobID, e.Err)
	case e.Type != "":
		return fmt.Sprintf("worker: %s job of type %q: %v", e.Op, e.Type, e.Err)
	}
	return fmt.Sprintf("worker: %s job: %v", e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *JobError) Unwrap() error { return e.Err }

// QueueError is an error about a queue: the seed's QueueError.
type QueueError struct {
	Queue string
	Op    string
	Err   error
}

func (e *QueueError) Error() string {
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

// noRetryError marks a processor error that must not be retried.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// NoRetry wraps err so that the Manager moves the job to dead at once,
// whatever attempts are left (for errors a retry cannot fix, such as a
// malformed payload).
func NoRetry(err error) error {
	if err == nil {
		err = errors.New("no retry")
	}
	return &noRetryError{err}
}

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
