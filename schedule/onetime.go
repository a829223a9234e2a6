package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// OneTime schedules named jobs to run once at a given time: the seed's
// OneTimeScheduler. A one-time job is an ordinary scheduled job with the
// deterministic id "once:<name>" in its queue, so it needs no scheduler
// loop (workers promote it when due) and scheduling a name twice is
// idempotent. Names are unique per queue. OneTime is safe for concurrent
// use.
type OneTime struct {
	b     broker.Broker
	store broker.Committer
	// Encryption, when set, seals the data of one-time jobs whose queue
	// or type it applies to, as Client.Add does (worker.Encryption). Set
	// it before the first Schedule.
	Encryption Sealer
}

// NewOneTime returns a OneTime on b, which must implement
// broker.Committer (for atomic rescheduling; both brokers of this module
// do).
func NewOneTime(b broker.Broker) (*OneTime, error) {
	if b == nil {
		return nil, errors.New("worker: new one-time scheduler: broker is nil")
	}
	store, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("worker: new one-time scheduler: broker %T does not implement broker.Committer", b)
	}
	return &OneTime{b: b, store: store}, nil
}

// OneTimeJobID is the id of the one-time job named name.
func OneTimeJobID(name string) string { return "once:" + name }

// Schedule enqueues job to run at at (broker clock; a past time runs at
// once) under name. If a job of that name exists in the queue, in any
// state, Schedule changes nothing and returns it: use Reschedule to move it.
func (o *OneTime) Schedule(ctx context.Context, name string, at time.Time, job JobTemplate) (*broker.Job, error) {
	if err := broker.ValidateScheduleName(name); err != nil {
		return nil, fmt.Errorf("worker: schedule one-time job: %w: %v", broker.ErrInvalidJob, err)
	}
	if at.IsZero() {
		return nil, fmt.Errorf("worker: schedule one-time job %q: %w: the time is zero", name, broker.ErrInvalidJob)
	}
	if job.MaxAttempts == 0 {
		job.MaxAttempts = 3
	}
	p := &broker.JobInsertParams{ID: OneTimeJobID(name), Queue: job.Queue, Type: job.Type, Data: job.Data,
		Priority: job.Priority, MaxAttempts: job.MaxAttempts, TenantID: job.TenantID, CompanyID: job.CompanyID,
		Headers: withHeaders(job.Headers, map[string]string{"schedule-once": name}), UniqueKey: job.UniqueKey,
		Timeout: job.Timeout, TTL: job.TTL, RunAt: at}
	if o.Encryption != nil {
		if err := o.Encryption.SealInsert(p); err != nil {
			return nil, fmt.Errorf("worker: schedule one-time job %q: %w", name, err)
		}
	}
	j, err := o.b.JobInsert(ctx, p)
	var dup *broker.DuplicateError
	if errors.As(err, &dup) && dup.UniqueKey == "" {
		return o.Get(ctx, job.Queue, name)
	}
	if err != nil {
		return nil, fmt.Errorf("worker: schedule one-time job %q: %w", name, err)
	}
	return j, nil
}

// Get returns the one-time job name of queue. broker.ErrNotFound if absent.
func (o *OneTime) Get(ctx context.Context, queue, name string) (*broker.Job, error) {
	j, err := o.b.JobGet(ctx, &broker.JobGetParams{Queue: queue, ID: OneTimeJobID(name)})
	if err != nil {
		return nil, fmt.Errorf("worker: get one-time job %q: %w", name, err)
	}
	return j, nil
}

// Cancel cancels the one-time job name of queue. broker.ErrWrongState if it
// has finished, broker.ErrNotFound if absent.
func (o *OneTime) Cancel(ctx context.Context, queue, name string) (*broker.Job, error) {
	j, err := o.b.JobCancel(ctx, &broker.JobCancelParams{Queue: queue, ID: OneTimeJobID(name)})
	if err != nil {
		return nil, fmt.Errorf("worker: cancel one-time job %q: %w", name, err)
	}
	return j, nil
}

// Reschedule moves a job that has not started to at, atomically.
// broker.ErrWrongState if it is running or finished.
func (o *OneTime) Reschedule(ctx context.Context, queue, name string, at time.Time) (*broker.Job, error) {
	if at.IsZero() {
		return nil, fmt.Errorf("worker: reschedule one-time job %q: %w: the time is zero", name, broker.ErrInvalidJob)
	}
	id := OneTimeJobID(name)
	if _, err := o.store.Commit(ctx, &broker.CommitParams{Scope: queue, Reschedule: []*broker.JobReschedule{{ID: id, RunAt: at}}}); err != nil {
		return nil, fmt.Errorf("worker: reschedule one-time job %q: %w", name, err)
	}
	j, err := o.b.JobGet(ctx, &broker.JobGetParams{Queue: queue, ID: id})
	if err != nil {
		return nil, fmt.Errorf("worker: reschedule one-time job %q: %w", name, err)
	}
	return j, nil
}

// List returns the queue's one-time jobs that have not started yet
// (scheduled, then pending), in due order.
func (o *OneTime) List(ctx context.Context, queue string) ([]*broker.Job, error) {
	return o.ListTenant(ctx, queue, "")
}

// ListTenant is List limited to one tenant's jobs, read through the
// broker's tenant index; "" lists every tenant's.
func (o *OneTime) ListTenant(ctx context.Context, queue, tenant string) ([]*broker.Job, error) {
	var out []*broker.Job
	for _, st := range []broker.State{broker.StateScheduled, broker.StatePending} {
		for offset := 0; offset >= 0; {
			page, err := o.b.JobList(ctx, &broker.JobListParams{Queue: queue, State: st, TenantID: tenant, Offset: offset, Limit: 1000})
			if err != nil {
				return nil, fmt.Errorf("worker: list one-time jobs of %q: %w", queue, err)
			}
			for _, j := range page.Jobs {
				if strings.HasPrefix(j.ID, "once:") {
					out = append(out, j)
				}
			}
			offset = page.NextOffset
		}
	}
	return out, nil
}
