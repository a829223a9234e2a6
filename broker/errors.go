package broker

import (
	"errors"
	"fmt"
)

// Sentinel errors. Brokers wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound: no job with that id exists in that queue.
	ErrNotFound = errors.New("job not found")
	// ErrDuplicate: a job with the same ID exists, or an unfinished job of the
	// same tenant holds the same unique key. The error is a *DuplicateError
	// naming the existing job.
	ErrDuplicate = errors.New("duplicate job")
	// ErrQueueFull: the insert would take the queue's unfinished jobs
	// (scheduled + pending) past JobInsertParams.MaxQueueLength. Nothing was written.
	ErrQueueFull = errors.New("queue is full")
	// ErrQueuePaused: the queue is paused; JobFetch returns it and no job.
	ErrQueuePaused = errors.New("queue is paused")
	// ErrLeaseLost: the lease token is stale (the lease expired and the job was
	// recovered, or the job was cancelled). The call changed nothing.
	ErrLeaseLost = errors.New("lease lost")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker is closed")
	// ErrInvalidJob: the job or parameters failed validation. Nothing was written.
	ErrInvalidJob = errors.New("invalid job")
	// ErrWrongState: the job exists but its state does not allow the operation
	// (cancel a completed job, retry a pending one, delete an active one).
	ErrWrongState = errors.New("job is in the wrong state")
)

// DuplicateError reports a rejected insert and the job that caused it.
// It matches ErrDuplicate with errors.Is.
type DuplicateError struct {
	Queue string
	// ExistingID is the job that holds the id or unique key. A unique key
	// is only ever held against jobs of the same tenant (Job.UniqueKey), so
	// the holder it names is never another tenant's job.
	ExistingID string
	UniqueKey  string // empty when the id itself collided
}

// Error says what is taken and by whom. It leaves the queue out: the
// error that wraps it (the insert that was refused) names it.
func (e *DuplicateError) Error() string {
	if e.UniqueKey != "" {
		return fmt.Sprintf("duplicate: unique key %q is held by job %s", e.UniqueKey, e.ExistingID)
	}
	return fmt.Sprintf("duplicate: job id %s already exists", e.ExistingID)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// InvalidError reports which field of which job failed validation. It
// matches ErrInvalidJob with errors.Is.
type InvalidError struct {
	Index  int    // position in a bulk insert; -1 for a single job
	Field  string // e.g. "queue", "type", "data", "priority"
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("invalid job at index %d: %s: %s", e.Index, e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid job: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidJob) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalidJob }
