// Package broker is the storage seam of aibos-worker: the interface every
// storage engine implements, its parameter structs and its sentinel errors.
//
// Users rarely import it: package worker wraps it in a Client and a Manager.
// Implementers read the method contracts below; package brokertest checks
// them (brokertest.Run) and every broker's tests run it whole.
//
// Contracts shared by all methods:
//   - Methods are safe for concurrent use by many goroutines and processes.
//   - Time is the broker's own clock (Redis TIME for the Redis broker), never
//     the caller's: durations in params are relative to it.
//   - Each state change is atomic: it happens whole or not at all.
//   - Errors wrap the sentinels of this package so errors.Is works.
//   - After Close, every method returns ErrClosed.
//   - Tenant scope: every method that reads or changes a job, lists jobs or
//     reads queue stats takes params with a TenantID. An empty TenantID is
//     unscoped (an operator's call) and sees every job. A non-empty one
//     scopes the call to the jobs whose Job.TenantID equals it; any other
//     job, a job with no TenantID included (it belongs to no tenant), is
//     treated as absent: ErrNotFound with the same message as for a job
//     that does not exist, and nothing changes. The scope is checked in the
//     same atomic step as the operation.
//
// Optional capabilities are small extra interfaces: Committer (the
// generic atomic primitive), LeaderStore, Waiter and ReadyWaiter (an idle
// worker sleeps until jobs come in, and learns into which queues),
// PendingLister (which queues hold jobs when a worker starts), WakeMuter
// (a busy worker stops hearing the wakes it does not need), and
// FairBroker, which shares a queue between its tenants (fair order within
// a priority, per-tenant caps, rate limits; fair.go describes the model
// both brokers implement).
package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Broker stores jobs and moves them between states.
type Broker interface {
	// JobInsert stores one job. It returns the stored job (ID, State, RunAt,
	// CreatedAt filled in) only once the job is durable.
	// It returns an *InvalidError if p fails Validate, a *DuplicateError if
	// the ID exists or an unfinished job of the same tenant holds
	// p.UniqueKey (see Job.UniqueKey), and ErrQueueFull
	// if p.MaxQueueLength > 0 and the queue already holds that many
	// scheduled + pending jobs. On error nothing is written.
	JobInsert(ctx context.Context, p *JobInsertParams) (*Job, error)

	// JobInsertMany stores jobs atomically: all or none. All jobs must share
	// one queue. Errors are as for JobInsert; an *InvalidError or
	// *DuplicateError names the first offending job. A duplicate inside the
	// batch itself (same ID, or the same unique key for one tenant, twice)
	// is a *DuplicateError too.
	// The queue-full check counts the whole batch.
	JobInsertMany(ctx context.Context, ps []*JobInsertParams) ([]*Job, error)

	// JobFetch leases up to p.Limit pending jobs of p.Queue, lowest priority
	// number first (1 is the most urgent) and FIFO among equals. Due
	// scheduled jobs are promoted first, so a delayed job is fetchable as
	// soon as it is due. Each returned job is active, has Attempt
	// incremented, a fresh LeaseToken greater than any earlier token of that
	// job, and LeaseUntil = now + p.LeaseDuration. A token never repeats,
	// even after the store lost or rolled back data (restored from an older
	// snapshot or backup): the lease identity a stale worker holds is then
	// rejected, never accepted in place of the current holder's. A pending job whose
	// ExpiresAt has passed is moved to expired, not returned. An empty queue returns an empty slice and no error; a paused
	// queue returns ErrQueuePaused.
	JobFetch(ctx context.Context, p *JobFetchParams) ([]*Job, error)

	// JobComplete acknowledges finished jobs in one batch (they may span
	// queues). Each job moves to completed with its result, or, if it was
	// inserted with DeleteOnComplete or its param says Delete, is removed
	// whole (with its index entries and unique key) at once. The returned
	// slice has one error per param, in order: nil, ErrNotFound, or
	// ErrLeaseLost when the job is not active under that token (that job is
	// left unchanged). The second return value reports a failure of the
	// whole call.
	JobComplete(ctx context.Context, ps []*JobCompleteParams) ([]error, error)

	// JobFail records a failed attempt. If p.Discard is false and the job has
	// attempts left (Attempt < MaxAttempts, where p.MaxAttempts > 0 replaces
	// the job's MaxAttempts and is stored), it moves to scheduled, due after
	// p.RetryDelay; otherwise it moves to dead. Either way p.Headers are
	// merged into the job's. Returns the new state.
	// ErrLeaseLost if the token is stale (nothing changes), ErrNotFound if
	// the job does not exist.
	JobFail(ctx context.Context, p *JobFailParams) (State, error)

	// JobRelease hands an active job back without counting the attempt: it
	// becomes pending at once with Attempt decremented, back at its place
	// (fetched before the jobs of its priority enqueued after it). Used on
	// graceful shutdown. ErrLeaseLost / ErrNotFound as for JobFail.
	JobRelease(ctx context.Context, p *JobLeaseParams) error

	// JobLeaseExtend extends leases in one batch to now + d. One error per
	// param: nil, ErrNotFound, or ErrLeaseLost (the worker must stop: the job
	// was recovered or cancelled).
	JobLeaseExtend(ctx context.Context, ps []*JobLeaseParams, d time.Duration) ([]error, error)

	// JobProgress stores progress for an active job. ErrLeaseLost if stale.
	JobProgress(ctx context.Context, p *JobLeaseParams, progress json.RawMessage) error

	// JobGet returns one job, with its attempt history (Job.Attempts; no
	// other method fills it). ErrNotFound if absent or outside p's tenant
	// scope.
	JobGet(ctx context.Context, p *JobGetParams) (*Job, error)

	// JobList lists a queue's jobs in one state, filtered and paginated.
	// Order: pending by fetch order; scheduled by RunAt; active by lease
	// expiry; finished states by FinishedAt, newest first. A listing with a
	// TenantID holds only that tenant's jobs and is served by a per-tenant
	// index: a page costs work in proportion to its offset and size within
	// the tenant's jobs in that state, never a scan of the queue.
	JobList(ctx context.Context, p *JobListParams) (*JobListResult, error)

	// JobCancel cancels a scheduled, pending or active job: it moves to
	// cancelled and releases its unique key; an active job's lease is
	// revoked, so its worker's next extend, complete or fail returns
	// ErrLeaseLost. ErrWrongState if the job is already finished;
	// ErrNotFound if absent or outside p's tenant scope (nothing changes).
	JobCancel(ctx context.Context, p *JobCancelParams) (*Job, error)

	// JobRetry moves a dead, cancelled or expired job back to pending with
	// Attempt reset to 0, taking its unique key back in its own tenant's
	// namespace. ErrWrongState for any other state; ErrDuplicate, naming
	// the holder (a job of the same tenant), if an unfinished job has taken
	// its unique key meanwhile; ErrNotFound if absent or outside p's tenant
	// scope (nothing changes).
	JobRetry(ctx context.Context, p *JobRetryParams) (*Job, error)

	// JobDelete removes a job that is not active, with all its index
	// entries and its unique key. ErrWrongState if active; ErrNotFound if
	// absent or outside p's tenant scope (nothing changes).
	JobDelete(ctx context.Context, p *JobDeleteParams) error

	// QueueStats counts a queue's jobs by state; with p.TenantID set, only
	// that tenant's jobs (OldestPendingAt too; Paused is the queue's). An
	// unknown queue or tenant has zero counts.
	QueueStats(ctx context.Context, p *QueueStatsParams) (*QueueStats, error)

	// QueueList names every queue that has ever held a job or been paused,
	// sorted.
	QueueList(ctx context.Context) ([]string, error)

	// QueuePause stops JobFetch from leasing the queue's jobs; inserts still
	// succeed. QueueResume undoes it. Both are idempotent.
	QueuePause(ctx context.Context, queue string) error
	QueueResume(ctx context.Context, queue string) error

	// QueueMaintain does a queue's housekeeping in bounded batches: recovers
	// expired leases (back to pending if attempts are left, else dead with a
	// "lease expired" error), promotes due scheduled jobs, expires pending
	// jobs past ExpiresAt, and removes completed jobs past the retention
	// rules (whole, with their index entries). A recovered job goes back to
	// its place, as with JobRelease. Retention rules remove only
	// the state they name: the completed-jobs rules never touch cancelled,
	// expired or dead jobs. Each step stops at p.Limit jobs; the result's
	// More reports that one did with work left, so that a caller keeping up
	// with a busy queue calls again at once rather than waiting for its
	// next round. Safe to run from many workers at once.
	QueueMaintain(ctx context.Context, p *QueueMaintainParams) (*QueueMaintainResult, error)

	// Ping checks the broker is reachable.
	Ping(ctx context.Context) error

	// Close releases the broker's resources. Jobs stay stored.
	Close() error
}

// JobInsertParams describes a job to insert.
type JobInsertParams struct {
	ID          string            // required; unique within the queue
	Queue       string            // required; see ValidateQueueName
	Type        string            // required
	Data        json.RawMessage   // a JSON document; empty means null
	Priority    int               // [MinPriority, MaxPriority], 1 first; 0 means DefaultPriority
	MaxAttempts int               // >= 1
	TenantID    string            //
	CompanyID   string            //
	Headers     map[string]string //
	UniqueKey   string            // held per (queue, tenant, key); see Job.UniqueKey
	Timeout     time.Duration     // >= 0
	// DeleteOnComplete removes the job whole as soon as it completes
	// (stored with it; see Job.DeleteOnComplete).
	DeleteOnComplete bool
	// Delay postpones the job: it is scheduled, due at broker now + Delay.
	// Ignored when RunAt is set.
	Delay time.Duration
	// RunAt, when set and in the future, schedules the job at that instant.
	RunAt time.Time
	// TTL, when > 0, sets ExpiresAt = due time + TTL.
	TTL time.Duration
	// MaxQueueLength, when > 0, rejects the insert with ErrQueueFull if the
	// queue's scheduled + pending jobs would exceed it.
	MaxQueueLength int
}

// JobFetchParams asks for jobs to lease.
type JobFetchParams struct {
	Queue         string
	Limit         int           // 1..1000
	LeaseDuration time.Duration // > 0
	WorkerID      string        // recorded on the job
}

// JobLeaseParams identifies a lease: the job and the token it was fetched with.
type JobLeaseParams struct {
	Queue string
	ID    string
	Token int64
}

// JobCompleteParams acknowledges a job.
type JobCompleteParams struct {
	JobLeaseParams
	Result json.RawMessage // optional JSON
	// Delete removes the job whole instead of keeping it completed, as if
	// it had been inserted with DeleteOnComplete (the Result is dropped).
	Delete bool
	// CompletedMaxCount, when > 0, is the queue's completed-jobs count
	// rule (QueueMaintainParams.CompletedMaxCount). A broker may apply it
	// as part of the completion, removing the queue's oldest completed jobs
	// beyond it, so that the completed set stays within the rule between
	// QueueMaintain calls whatever the completion rate (the Redis broker
	// does, to keep its memory flat, once 100 jobs are in excess, so that
	// one trim removes many); QueueMaintain applies it in any case.
	// Within one call the smallest value given for a queue applies.
	CompletedMaxCount int
}

// JobFailParams records a failed attempt.
type JobFailParams struct {
	JobLeaseParams
	Error      string        // what went wrong (may include a stack)
	RetryDelay time.Duration // >= 0: how long until the retry is due
	Discard    bool          // true: dead now, whatever attempts are left
	// MaxAttempts, when > 0, overrides the job's MaxAttempts for this
	// decision (dead unless Attempt < MaxAttempts) and is stored on the job,
	// so later fetches, failures and lease recoveries use it too. Used by
	// recovery policies whose error class allows more (or fewer) attempts
	// than the job was enqueued with.
	MaxAttempts int
	// Headers, when not empty, are merged into the job's stored headers in
	// the same atomic transition (a key already there takes the new value),
	// so that the next attempt, on any worker, reads them: package tracing
	// stores the failed attempt's span context this way. They are checked
	// as an insert's headers are; keep them few, since they add to the
	// job's at every failure.
	Headers map[string]string
}

// JobGetParams names a job to read.
type JobGetParams struct {
	Queue    string
	ID       string
	TenantID string // scope; "" for any tenant
}

// JobCancelParams names a job to cancel.
type JobCancelParams struct {
	Queue    string
	ID       string
	TenantID string // scope; "" for any tenant
}

// JobRetryParams names a job to retry.
type JobRetryParams struct {
	Queue    string
	ID       string
	TenantID string // scope; "" for any tenant
}

// JobDeleteParams names a job to delete.
type JobDeleteParams struct {
	Queue    string
	ID       string
	TenantID string // scope; "" for any tenant
}

// QueueStatsParams names the queue, and optionally the tenant, to count.
type QueueStatsParams struct {
	Queue    string
	TenantID string // scope; "" counts every job of the queue
}

// JobListParams selects jobs to list.
type JobListParams struct {
	Queue    string
	State    State
	TenantID string // scope; "" for any tenant
	Type     string // optional filter
	Offset   int    // position in the (filtered) listing
	// After, when set, starts the page right after the job an earlier
	// page of the same listing ended with: the Cursor of that page's
	// result (keyset paging; Offset must then be 0). Unlike an offset, a
	// cursor is not shifted by jobs added or removed between pages: a
	// walk of every page lists each job that stays in the state (at its
	// place in the order) throughout the walk.
	After string
	Limit int // 1..1000; 0 means 100
}

// JobListResult is one page of a listing.
type JobListResult struct {
	Jobs []*Job
	// NextOffset is the Offset of the next page; -1 when there is none.
	// A page listed with After counts it from the cursor: use Cursor.
	NextOffset int
	// Cursor is the After of the next page; "" when there is none. It is
	// opaque, meaningful only to the broker that returned it and only for
	// the same listing (queue, state, tenant and type).
	Cursor string
}

// QueueMaintainParams bounds housekeeping.
type QueueMaintainParams struct {
	Queue string
	// CompletedMaxAge removes completed jobs finished longer ago; 0 keeps them.
	CompletedMaxAge time.Duration
	// CompletedMaxCount keeps only the newest n completed jobs; 0 means no limit.
	CompletedMaxCount int
	// DeadMaxAge removes dead jobs finished longer ago; 0 keeps them forever.
	DeadMaxAge time.Duration
	// Limit caps how many jobs each step touches per call; 0 means 1000.
	Limit int
	// MaxCrashes quarantines a job whose lease expired MaxCrashes times in
	// a row: when the lease recovered now ends a run of that many
	// consecutive lease_expired attempts in the job's history, the job goes
	// to dead with QuarantineReason as its last error, whatever attempts it
	// has left. Any other outcome (a failure, a hand-back) ends the run. 0
	// turns the rule off; at most MaxAttemptHistory, as the count comes
	// from the history.
	MaxCrashes int
	// CrashSpread, with MaxCrashes on, makes a job recovered after its
	// second lease expiry in a row or later (with MaxCrashes 2, its first)
	// wait a random delay in [0, CrashSpread) as scheduled instead of going
	// back to its place. The jobs that died beside a job that crashes its
	// worker were recovered with it, side by side, and would be fetched
	// with it and die with it again until the rule took them all; spread
	// out, they run apart from it and complete. 0 recovers every job to its
	// place.
	CrashSpread time.Duration
}

// QuarantineReason is the last error of a job quarantined after its lease
// expired n times in a row (QueueMaintainParams.MaxCrashes).
func QuarantineReason(n int) string {
	return fmt.Sprintf("quarantined: its worker died under it %d times in a row (lease expired each time)", n)
}

// ValidateMaintain checks p's numbers: none negative, MaxCrashes at most
// MaxAttemptHistory. The error names the field.
func ValidateMaintain(p *QueueMaintainParams) error {
	switch {
	case p.Limit < 0 || p.CompletedMaxAge < 0 || p.CompletedMaxCount < 0 || p.DeadMaxAge < 0:
		return fmt.Errorf("%w: limits must not be negative", ErrInvalidJob)
	case p.CrashSpread < 0:
		return fmt.Errorf("%w: crash spread %v is negative", ErrInvalidJob, p.CrashSpread)
	case p.MaxCrashes < 0 || p.MaxCrashes > MaxAttemptHistory:
		return fmt.Errorf("%w: max crashes %d is outside 0..%d", ErrInvalidJob, p.MaxCrashes, MaxAttemptHistory)
	}
	return nil
}

// QueueMaintainResult counts what QueueMaintain did.
type QueueMaintainResult struct {
	Recovered int // expired leases returned to pending
	Dead      int // expired leases with no attempts left, now dead
	Promoted  int // scheduled jobs now pending
	Expired   int // pending jobs past their TTL
	Removed   int // completed or dead jobs removed by retention
	// Quarantined counts the jobs of Dead that went there by the
	// MaxCrashes rule rather than for want of attempts.
	Quarantined int
	// More reports that a step stopped at the limit and may have work
	// left: call again. It may be true when exactly Limit jobs were left.
	More bool
	// Idle reports that, as the call left it, the queue holds no pending,
	// scheduled or active job (and More is false): until a job is added
	// (inserted, retried), only the retention rules have work there, so a
	// worker may maintain it much less often. Read in the same atomic step.
	Idle bool
}
