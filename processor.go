package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aibos/worker/broker"
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

// jobContext is the context a processor gets: its run context, which
// also carries the job's handle under jobCtxKey. It lives in the job's
// running record, so it costs no allocation of its own, where a
// context.WithValue per job did. Every other method, including the Value
// lookups context.Cause and child contexts make, goes to the run context,
// so the processor's context cancels, reports its deadline and its cause
// exactly as the run context does.
type jobContext struct {
	context.Context
	r *running
}

// Value returns the job's handle for jobCtxKey, else the run context's value.
func (c *jobContext) Value(key any) any {
	if key == (jobCtxKey{}) {
		return c.r
	}
	return c.Context.Value(key)
}

// running is what the Manager knows about one job in flight.
type running struct {
	job    *Job
	cancel context.CancelCauseFunc
	m      *Manager
	// deleteOnComplete is the queue's QueueConfig.DeleteOnComplete.
	deleteOnComplete bool
	// detached marks a job run by ProcessJob: it holds no lease, so its
	// progress is not stored.
	detached bool
	// slotHeld marks a job that took its run slot as it was leased
	// (executor.run): it waits for nothing.
	slotHeld bool

	// settled is set once the Manager reports the job's outcome or hands
	// it back: a lease the heartbeat then finds gone was given up by this
	// worker (the acknowledgement raced the extension), not lost.
	settled atomic.Bool
	// reported is claimed once per attempt by whoever ends it: the
	// processor's return, or the watchdog that abandons a processor that
	// ran on past its context (abandoned then).
	reported  atomic.Bool
	abandoned atomic.Bool
	watchdog  atomic.Pointer[time.Timer]
	// For the watchdog (watchdog.go): proc is set once the processor
	// starts, with the contexts it runs under and when; armed once a
	// watchdog is armed or has fired. The watch fields belong to the
	// executor's watchList, under its mutex.
	proc                 atomic.Bool
	armed                atomic.Bool
	jobCtx, runCtx       context.Context
	began                time.Time
	watchAt              time.Time
	watchPrev, watchNext *running
	watched              bool
	ownWatch             *time.Timer // for a job's own Timeout; see startWatch

	mu          sync.Mutex
	result      json.RawMessage
	finisher    Finisher          // set by SetFinisher; nil: the Manager finishes the job itself
	failHeaders map[string]string // set by SetFailHeaders

	// Set by executor.run for runJob: the job's queue, its turn among the
	// tenant's jobs leased ahead (prev closed when the job before has its
	// slot; turn, closed when this one has) and when waiting for a slot
	// may end (zero: never). In the record, the goroutine that runs the
	// job takes no closure.
	q          *queueSlot
	prev, turn chan struct{}
	waitUntil  time.Time
	took       time.Duration // how long the processor ran, for Acked

	ctx        jobContext               // the processor's context; set before it runs
	copy       Job                      // the processor's copy of job (processorCopy)
	completion broker.JobCompleteParams // its completion, once it succeeded (Manager.finish)
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

// SetFailHeaders has headers merged into the job's stored Headers if this
// attempt fails (whether it is retried or dead), in the same atomic write
// as the failure, so that the next attempt reads them in Job.Headers on any
// worker; a key already there takes the new value. Nothing is written if
// the attempt succeeds. Package tracing stores the failed attempt's span
// context this way, for the retry's link. Calls merge, the last value of a
// key winning. Call it from a processor (or middleware) with the context
// it was given; headers are checked as a JobSpec's are.
func SetFailHeaders(ctx context.Context, headers map[string]string) error {
	r, err := handleFrom(ctx)
	if err != nil {
		return err
	}
	if err := (&broker.JobFailParams{Headers: headers}).Validate(); err != nil {
		return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set fail headers of", Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failHeaders == nil {
		r.failHeaders = make(map[string]string, len(headers))
	}
	maps.Copy(r.failHeaders, headers)
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
	if r.detached {
		return nil
	}
	if enc := r.m.cfg.Encryption; enc.Applies(r.job.Queue, r.job.Type) {
		if data, err = enc.sealJSON(data, bindingOf(r.job, fieldProgress)); err != nil {
			return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set progress of", Err: fmt.Errorf("encrypt progress: %w", err)}
		}
	}
	if err := r.m.b.JobProgress(ctx, r.lease(), data); err != nil {
		return &JobError{JobID: r.job.ID, Type: r.job.Type, Op: "set progress of", Err: err}
	}
	return nil
}

// ProcessJob runs job now, in the caller's goroutine, through the
// processor registered for its type with the Manager's middleware: the
// seed's processJob, for tests and one-off tools. It takes no lease and
// writes nothing to the broker: the job need not exist there, its attempt
// is not counted, no retry is scheduled and no event is reported.
// SetResult and SetProgress succeed and store nothing; a Finisher set with
// SetFinisher is not called. The processor runs under the job's Timeout
// (or the Manager's) and a panic becomes an error. ProcessJob works
// whether or not the Manager is started and is safe for concurrent use.
//
// It returns nil when the processor succeeds, else a *JobError with Op
// "process" wrapping the processor's error, so errors.As finds the
// processor's own error types. An unknown job type is such an error too.
func (m *Manager) ProcessJob(ctx context.Context, job *Job) error {
	switch {
	case ctx == nil:
		return &JobError{Op: "process", Err: errors.New("context is nil")}
	case job == nil:
		return &JobError{Op: "process", Err: errors.New("job is nil")}
	case job.Type == "":
		return &JobError{JobID: job.ID, Op: "process", Err: errors.New("job type is empty")}
	}
	m.mu.Lock()
	p := m.procs[job.Type]
	if p != nil && !m.started { // Start wraps the processors; before it, wrap this one
		p = m.wrap(p)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &running{job: job, cancel: cancel, m: m, detached: true}
	if err := m.runProcessor(ctx, r, p); err != nil {
		return &JobError{JobID: job.ID, Type: job.Type, Queue: job.Queue, Op: "process", Err: err}
	}
	return nil
}

// Acked reports the outcome of the job's completion, which the
// acknowledger wrote in a batch (Manager.finish queued it).
func (r *running) Acked(err error) { r.m.completed(r.job, r.took, err) }
