package tenant

import (
	"context"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/schedstore"
)

// PurgeResult counts what Purge removed, or with DryRun would remove.
type PurgeResult struct {
	TenantID string `json:"tenantId"`
	DryRun   bool   `json:"dryRun"`
	// Jobs counts the tenant's jobs per state, over every queue.
	Jobs map[broker.State]int `json:"jobs"`
	// Schedules names the cron schedules whose job belongs to the tenant.
	Schedules []string `json:"schedules"`
	// Runs counts the tenant's workflow runs, over every queue.
	Runs int `json:"runs"`
}

// maxPurgePasses bounds how often Purge walks the queues again because a
// pass still found jobs (a job that moved state, or was enqueued, while it
// ran).
const maxPurgePasses = 10

// Purge removes every job of the tenant id (every queue, every state:
// active jobs are cancelled, revoking their leases, then removed), every
// workflow run of the tenant (a running one cancelled first) and every
// cron schedule whose job template belongs to it, so that no new job of
// the tenant appears from a schedule afterwards. One-time schedules are
// scheduled jobs and go with them. With dryRun it changes nothing and
// counts what it would remove.
//
// Purge does not need the tenant to be registered (jobs may carry any
// tenant id) and leaves its registry entry alone. It is not a lock: a job
// enqueued for the tenant while Purge runs may survive it. The schedules
// go first, then the jobs, walked queue by queue through the broker's
// per-tenant index until a whole pass finds none, then the runs, through
// their own per-tenant index.
func Purge(ctx context.Context, b broker.Broker, id string, dryRun bool) (*PurgeResult, error) {
	if id == "" {
		return nil, &InvalidError{Field: "id", Reason: "is empty"}
	}
	res := &PurgeResult{TenantID: id, DryRun: dryRun, Jobs: map[broker.State]int{}, Schedules: []string{}}
	if err := purgeSchedules(ctx, b, id, dryRun, res); err != nil {
		return nil, fmt.Errorf("purge tenant %q: %w", id, err)
	}
	if err := purgeAllJobs(ctx, b, id, dryRun, res); err != nil {
		return nil, fmt.Errorf("purge tenant %q: %w", id, err)
	}
	// The runs go after their jobs, so that every job is counted as a job
	// (a dry run counts it there too) and a cancelled run has no job left
	// to run on.
	if err := purgeRuns(ctx, b, id, dryRun, res); err != nil {
		return nil, fmt.Errorf("purge tenant %q: %w", id, err)
	}
	return res, nil
}

func purgeAllJobs(ctx context.Context, b broker.Broker, id string, dryRun bool, res *PurgeResult) error {
	for range maxPurgePasses {
		found, err := purgeJobs(ctx, b, id, dryRun, res)
		if err != nil {
			return err
		}
		if found == 0 || dryRun {
			return nil
		}
	}
	return fmt.Errorf("jobs still appear after %d passes (is something enqueuing for the tenant?)", maxPurgePasses)
}

func purgeSchedules(ctx context.Context, b broker.Broker, id string, dryRun bool, res *PurgeResult) error {
	st, err := schedstore.New(b)
	if err != nil {
		return err
	}
	l, err := st.ScheduleList(ctx)
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	// Schedules carry no tenant index: the registry of schedules is small
	// (a deployment's cron entries) and read whole by every scheduler too.
	for _, s := range l.Schedules {
		if s.Job.TenantID != id {
			continue
		}
		res.Schedules = append(res.Schedules, s.Name)
		if dryRun {
			continue
		}
		if err := st.ScheduleDelete(ctx, s.Name); err != nil && !errors.Is(err, broker.ErrScheduleNotFound) {
			return fmt.Errorf("delete schedule %q: %w", s.Name, err)
		}
	}
	return nil
}

func purgeRuns(ctx context.Context, b broker.Broker, id string, dryRun bool, res *PurgeResult) error {
	rs, err := runstore.New(b)
	if err != nil {
		return err
	}
	queues, err := b.QueueList(ctx)
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	for _, q := range queues {
		for {
			ids, total, err := rs.TenantRuns(ctx, q, id, 0, 1000)
			if err != nil {
				return err
			}
			if dryRun {
				res.Runs += total
				break
			}
			if len(ids) == 0 {
				break
			}
			for _, run := range ids {
				if err := rs.WorkflowRunPurge(ctx, q, run); err != nil {
					return fmt.Errorf("remove workflow run %s of queue %q: %w", run, q, err)
				}
				res.Runs++
			}
		}
	}
	return nil
}

// purgeJobs walks every queue and state once and returns how many of the
// tenant's jobs it found (and, unless dryRun, removed).
func purgeJobs(ctx context.Context, b broker.Broker, id string, dryRun bool, res *PurgeResult) (int, error) {
	queues, err := b.QueueList(ctx)
	if err != nil {
		return 0, fmt.Errorf("list queues: %w", err)
	}
	found := 0
	for _, q := range queues {
		for _, state := range broker.States {
			n, err := purgeState(ctx, b, q, state, id, dryRun)
			if err != nil {
				return 0, err
			}
			res.Jobs[state] += n
			found += n
		}
	}
	return found, nil
}

func purgeState(ctx context.Context, b broker.Broker, queue string, state broker.State, id string, dryRun bool) (int, error) {
	n, offset := 0, 0
	for {
		l, err := b.JobList(ctx, &broker.JobListParams{Queue: queue, State: state, TenantID: id, Offset: offset, Limit: 1000})
		if err != nil {
			return 0, fmt.Errorf("list %s jobs of queue %q: %w", state, queue, err)
		}
		n += len(l.Jobs)
		if !dryRun {
			for _, j := range l.Jobs {
				if err := removeJob(ctx, b, j); err != nil {
					return 0, err
				}
			}
		}
		if l.NextOffset < 0 {
			return n, nil
		}
		if dryRun {
			// Removed jobs leave the listing; counted ones stay in it.
			offset = l.NextOffset
		}
	}
}

// removeJob deletes j, cancelling it first if it is active (or became
// active since it was listed). A job already gone is not an error.
func removeJob(ctx context.Context, b broker.Broker, j *broker.Job) error {
	ref := &broker.JobDeleteParams{Queue: j.Queue, ID: j.ID, TenantID: j.TenantID}
	err := b.JobDelete(ctx, ref)
	if errors.Is(err, broker.ErrWrongState) {
		_, err = b.JobCancel(ctx, &broker.JobCancelParams{Queue: j.Queue, ID: j.ID, TenantID: j.TenantID})
		if err == nil || errors.Is(err, broker.ErrWrongState) {
			err = b.JobDelete(ctx, ref)
		}
	}
	if err != nil && !errors.Is(err, broker.ErrNotFound) {
		return fmt.Errorf("remove job %s of queue %q: %w", j.ID, j.Queue, err)
	}
	return nil
}
