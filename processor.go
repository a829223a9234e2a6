package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Processor processes jobs of one type: the seed's JobProcessor. Process
// returns nil on success. An error is a failed attempt, retried with backoff
// while attempts are left (see NoRetry and RetryAfter). ctx is cancelled
// when the job times out, its lease is lost, it is cancelled, or the
// Manager shuts down hard; processors should return promptly then. job is
// the processor's own copy: changing it does not change how the Manager
// acknowledges, logs or reports the job.
type Processor interface {
	Process(ctx context.Context, job *Job) error
}

// ProcessorFunc adapts a function to a Processor.
type ProcessorFunc func(ctx context.Context, job *Job) error

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, job *Job) error { return f(ctx, job) }

// Middleware wraps a Processor, e.g. for logging, tracing or validation.
type Middleware func(Processor) Processor

// jobCtxKey carries the running job's handle in a processor's context.
type jobCtxKey struct{}

// running is what the Manager knows about one job in flight.
type running struct {
	job    *Job
	cancel context.CancelCauseFunc
	m      *Manager
	// deleteOnComplete is the queue's QueueConfig.DeleteOnComplete.
	deleteOnComplete bool

	mu       sync.Mutex
	result   json.RawMessage
	finisher Finisher // set by SetFinisher; nil: the Manager finishes the job itself
}

func handleFrom(ctx context.Context) (*running, error) {
	r, ok := ctx.Value(jobCtxKey{}).(*running)
	if !ok {
		return nil, errors.New("worker: context does not belong to a job run by a Manager")
	}
	return r, nil
}

// SetResult stores v (as JSON) as the job's result; it is saved with the
// completion. Call it from a processor with the context it was given.
func SetResult(ctx context.Context, v any) error {
	r, err := handleFrom(ctx)
	if err != nil {
		return err
	}
	data, err := encodeData(v)
	if err != nil {
		return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set result of", Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	r.mu.Lock()
	r.result = data
	r.mu.Unlock()
	return nil
}

// SetProgress stores v (as JSON, e.g. a percentage or an object) as the
// job's progress, visible at once through Client.Get. It returns
// ErrLeaseLost if the job is no longer this worker's.
func SetProgress(ctx context.Context, v any) error {
	r, err := handleFrom(ctx)
	if err != nil {
		return err
	}
	data, err := encodeData(v)
	if err != nil {
		return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set progress of", Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	if err := r.m.b.JobProgress(ctx, r.lease(), data); err != nil {
		return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set progress of", Err: err}
	}
	return nil
}
