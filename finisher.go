package worker

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// Finisher reports the outcome of one job in place of the Manager's own
// broker calls. A processor installs one with SetFinisher when finishing its
// job must change more than the job in the same atomic transition (package
// workflow completes a step and enqueues the steps it unblocks this way).
//
// Complete is called instead of broker JobComplete when the processor
// succeeds; Fail instead of broker JobFail when it fails (p carries the
// retry delay, discard flag and attempts override the Manager chose). Both
// follow the broker's contracts: they return ErrLeaseLost, wrapped, when the
// job is no longer this worker's, and change nothing then. Hand-backs at
// shutdown still go to the broker's JobRelease.
type Finisher interface {
	Complete(ctx context.Context, p *broker.JobCompleteParams) error
	Fail(ctx context.Context, p *broker.JobFailParams) (State, error)
}

// SetFinisher makes the Manager finish the job running under ctx through f.
// Call it from a processor with the context it was given; the last call
// wins. It fails if ctx does not belong to a job run by a Manager.
func SetFinisher(ctx context.Context, f Finisher) error {
	r, err := handleFrom(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.finisher = f
	r.mu.Unlock()
	return nil
}

func (r *running) getFinisher() Finisher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finisher
}

// complete acknowledges a finished job through its Finisher. Jobs without
// one are acknowledged in the Manager's completion batches (package
// internal/acknowledger).
func (m *Manager) complete(r *running, p *broker.JobCompleteParams) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.getFinisher().Complete(ctx, p)
}

// fail records a failed attempt: through the job's Finisher if it has one,
// else with the broker's JobFail.
func (m *Manager) fail(ctx context.Context, r *running, p *broker.JobFailParams) (State, error) {
	if f := r.getFinisher(); f != nil {
		return f.Fail(ctx, p)
	}
	return m.b.JobFail(ctx, p)
}
