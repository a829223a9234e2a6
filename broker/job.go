package broker

import (
	"encoding/json"
	"time"
)

// State is where a job is in its life. Every job is in exactly one state.
//
//	scheduled ──due──▶ pending ──fetch──▶ active ──complete──▶ completed
//	    ▲                 │                 │  └──fail, attempts left──▶ scheduled
//	    │                 │                 └──fail, no attempts left──▶ dead
//	    │                 ├──TTL passed──▶ expired
//	    └─────────────────┴──cancel──▶ cancelled   (active jobs can be cancelled too)
type State string

// The job states.
const (
	StateScheduled State = "scheduled" // delayed, or waiting to retry
	StatePending   State = "pending"   // ready to be fetched
	StateActive    State = "active"    // leased by a worker
	StateCompleted State = "completed" // processed successfully
	StateDead      State = "dead"      // failed with no attempts left, or discarded
	StateCancelled State = "cancelled" // cancelled by a user
	StateExpired   State = "expired"   // not started before its TTL ran out
)

// States lists every state in life-cycle order.
var States = []State{StateScheduled, StatePending, StateActive, StateCompleted, StateDead, StateCancelled, StateExpired}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Finished reports whether s is a final state: the job will not run again
// unless an operator retries it.
func (s State) Finished() bool {
	switch s {
	case StateCompleted, StateDead, StateCancelled, StateExpired:
		return true
	}
	return false
}

// Job is a job as a broker stores it. It is also the job a processor
// receives (package worker re-exports it as worker.Job).
type Job struct {
	// ID is unique within its queue (jobs are addressed by queue and id).
	// Inserting a second job with an ID that exists in the queue (in any
	// state) fails with ErrDuplicate. Client-generated ids are UUIDv7s, so
	// they are unique everywhere.
	ID string `json:"id"`
	// Queue is the queue the job lives in.
	Queue string `json:"queue"`
	// Type selects the processor, e.g. "invoice.processing".
	Type string `json:"type"`
	// Data is the job's payload: a JSON document.
	Data json.RawMessage `json:"data,omitempty"`
	// Priority orders jobs within a queue: lower numbers first (1 is the
	// most urgent, as in the seed), FIFO among equals. It lies in
	// [MinPriority, MaxPriority]; a job inserted with 0 has DefaultPriority.
	Priority int `json:"priority"`
	// MaxAttempts is how many times the job may be tried in all (at least 1).
	MaxAttempts int `json:"max_attempts"`
	// Attempt counts the attempts started so far: 1 during the first run.
	Attempt int `json:"attempt"`
	// TenantID and CompanyID are set by the enqueuer; they are metadata, never
	// taken from the payload.
	TenantID  string `json:"tenant_id,omitempty"`
	CompanyID string `json:"company_id,omitempty"`
	// Headers carry small string metadata (trace ids, origin).
	Headers map[string]string `json:"headers,omitempty"`
	// UniqueKey, when set, rejects another job of the same tenant with the
	// same key in the same queue while this one is unfinished (scheduled,
	// pending or active). Keys are held per (queue, tenant, key): jobs of
	// different tenants never block each other, and jobs with no tenant
	// share a namespace of their own.
	UniqueKey string `json:"unique_key,omitempty"`
	// Timeout bounds one attempt; zero means the Manager's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// DeleteOnComplete, set at insert, removes the job whole as soon as it
	// completes instead of keeping it completed until retention removes it.
	DeleteOnComplete bool `json:"delete_on_complete,omitempty"`
	// State is the job's current state.
	State State `json:"state"`

	CreatedAt time.Time `json:"created_at"`
	// RunAt is when the job is (or was) due.
	RunAt time.Time `json:"run_at"`
	// ExpiresAt, when set, is the time after which a job that has not started
	// moves to StateExpired instead of running.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// StartedAt is when the current or last attempt started.
	StartedAt time.Time `json:"started_at,omitzero"`
	// FinishedAt is when the job reached a final state.
	FinishedAt time.Time `json:"finished_at,omitzero"`

	// LastError is the error of the last failed attempt (with a stack trace
	// when the processor panicked).
	LastError string `json:"last_error,omitempty"`
	// Result is what the processor stored on success (JSON).
	Result json.RawMessage `json:"result,omitempty"`
	// Progress is what the processor last reported (JSON).
	Progress json.RawMessage `json:"progress,omitempty"`

	// LeaseToken is the fencing token of the current lease; it is set only
	// on jobs returned by JobFetch and grows with every lease of the job.
	LeaseToken int64 `json:"lease_token,omitempty"`
	// LeaseUntil is when the current lease expires unless extended.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// WorkerID names the worker holding the lease.
	WorkerID string `json:"worker_id,omitempty"`

	// Attempts lists the job's finished attempts, oldest first: the last
	// MaxAttemptHistory of them, each recorded in the same atomic
	// transition as its outcome. Only JobGet fills it (it costs a read the
	// fetch and list paths do not pay); jobs stored by a release before it
	// was kept have an empty history.
	Attempts []AttemptRecord `json:"attempts,omitempty"`
}

// Priority bounds and default. 1 is the most urgent priority, as in the
// seed (and BullMQ): jobs with lower numbers are fetched first. Both brokers
// keep the order exact over the whole range. Priority 0 in insert params is
// not a priority of its own but means DefaultPriority, the middle of the
// seed's 1..4, so that a job that sets none runs after urgent work (1, 2)
// and before deferrable work (4 and above).
const (
	MinPriority     = 1
	MaxPriority     = 1000
	DefaultPriority = 3
)

// PriorityOrDefault returns p, or DefaultPriority when p is 0: the priority
// a job inserted with p is stored with.
func PriorityOrDefault(p int) int {
	if p == 0 {
		return DefaultPriority
	}
	return p
}

// StoredPriority returns the priority a stored number means. Numbers below
// MinPriority were written before priority 1 meant the most urgent, when 0
// was the default and higher numbers ran first: they read as
// DefaultPriority - p (at most MaxPriority), so the old default is the
// default again and a job stored below it stays below it. Every other
// number means what it says. Brokers apply it wherever they read a stored
// priority, so no job of an older release jumps ahead of priority 1.
func StoredPriority(p int) int {
	if p >= MinPriority {
		return p
	}
	return min(DefaultPriority-p, MaxPriority)
}

// MaxDataBytes is the largest payload a broker accepts. Clients may set a
// lower limit.
const MaxDataBytes = 16 << 20

// QueueStats counts a queue's jobs by state.
type QueueStats struct {
	Queue     string `json:"queue"`
	Paused    bool   `json:"paused"`
	Scheduled int64  `json:"scheduled"`
	Pending   int64  `json:"pending"`
	Active    int64  `json:"active"`
	Completed int64  `json:"completed"`
	Dead      int64  `json:"dead"`
	Cancelled int64  `json:"cancelled"`
	Expired   int64  `json:"expired"`
	// OldestPendingAt is the RunAt (the time it became due) of the pending
	// job that has waited longest; zero when nothing is pending. Brokers
	// document how exact it is: the Redis broker looks only at the job first
	// in line of each priority, so a job that waits behind a later-due one
	// of its priority (a retry promoted after jobs enqueued later, keeping
	// its older RunAt) is not seen until it reaches the head of that line.
	OldestPendingAt time.Time `json:"oldest_pending_at,omitzero"`
	// CompletedLastMinute counts the jobs (of the tenant, in stats scoped
	// to one) that completed within the last RecentWindow of the broker's
	// clock: the recent processing rate, per minute. It counts the
	// completed jobs still stored, so jobs deleted on completion or removed
	// by retention within the window are not in it. Brokers count it from
	// an index ordered by finish time, so it costs one bounded range count.
	CompletedLastMinute int64 `json:"completed_last_minute,omitempty"`
	// TenantPaused reports, in stats scoped to a tenant, that the tenant's
	// jobs of the queue are paused (FairBroker.QueueTenantPause).
	TenantPaused bool `json:"tenant_paused,omitempty"`
	// Rates are the queue's rate limits and how many jobs each lets start
	// now (see RateStats for which; a broker without broker.FairBroker
	// reports none).
	Rates []RateStat `json:"rates,omitempty"`
}

// RecentWindow is the window of QueueStats.CompletedLastMinute.
const RecentWindow = time.Minute

// Count returns the number of jobs in state s.
func (s *QueueStats) Count(st State) int64 {
	switch st {
	case StateScheduled:
		return s.Scheduled
	case StatePending:
		return s.Pending
	case StateActive:
		return s.Active
	case StateCompleted:
		return s.Completed
	case StateDead:
		return s.Dead
	case StateCancelled:
		return s.Cancelled
	case StateExpired:
		return s.Expired
	}
	return 0
}

// Unfinished is the number of jobs still to run or running.
func (s *QueueStats) Unfinished() int64 { return s.Scheduled + s.Pending + s.Active }

// Total is the number of the queue's jobs in every state.
func (s *QueueStats) Total() int64 {
	return s.Unfinished() + s.Completed + s.Dead + s.Cancelled + s.Expired
}
