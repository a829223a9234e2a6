package worker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

// Job is a stored job: what a processor receives and what the Client
// returns. See broker.Job for the fields.
type Job = broker.Job

// State is a job's place in its life cycle.
type State = broker.State

// The job states.
const (
	StateScheduled = broker.StateScheduled
	StatePending   = broker.StatePending
	StateActive    = broker.StateActive
	StateCompleted = broker.StateCompleted
	StateDead      = broker.StateDead
	StateCancelled = broker.StateCancelled
	StateExpired   = broker.StateExpired
)

// QueueStats counts a queue's jobs by state.
type QueueStats = broker.QueueStats

// JobSpec describes a job to add: the seed's Job {type, data, priority,
// delay, attempts} plus tenancy and the options asynq and BullMQ users
// expect. Only Type is required.
type JobSpec struct {
	// Type selects the processor, e.g. "invoice.processing". Required.
	Type string
	// Data is the payload. It is marshalled to JSON; a json.RawMessage or
	// []byte is taken as JSON as it is (and must be valid).
	Data any
	// ID makes the job's id explicit (an idempotency key: adding the same
	// id twice fails with ErrDuplicate). Defaults to a new UUIDv7.
	ID string
	// Priority orders jobs within the queue as the seed means it: 1 is the
	// most urgent and runs first, FIFO among equals, in
	// [broker.MinPriority, broker.MaxPriority] (1..1000). Defaults to
	// broker.DefaultPriority (3), the middle of the seed's 1..4: jobs that
	// set none run after priorities 1 and 2 and before 4 and above.
	Priority int
	// Delay postpones the job. RunAt, if set, wins.
	Delay time.Duration
	// RunAt schedules the job at an instant.
	RunAt time.Time
	// MaxAttempts is how many times the job may be tried. Defaults to the
	// Client's DefaultMaxAttempts.
	MaxAttempts int
	// TenantID and CompanyID scope the job to a tenant; they are metadata,
	// never read from Data.
	TenantID  string
	CompanyID string
	// Headers carry small string metadata.
	Headers map[string]string
	// UniqueKey rejects another job of the same tenant with this key in the
	// queue while this one is unfinished. Keys are held per tenant: jobs of
	// other tenants never block it (jobs with no tenant share a namespace
	// of their own).
	UniqueKey string
	// Timeout bounds one attempt. Defaults to the Manager's Timeout.
	Timeout time.Duration
	// DeleteOnComplete removes the job whole as soon as it completes
	// (BullMQ's removeOnComplete), instead of keeping it for the Manager's
	// retention; QueueConfig.DeleteOnComplete does it for a whole queue.
	// Defaults to false.
	DeleteOnComplete bool
	// TTL expires the job if it has not started within TTL of being due.
	// Defaults to the Client's DefaultTTL.
	TTL time.Duration
}

// Decode unmarshals a job's data into v, with an error naming the job.
func Decode(job *Job, v any) error {
	if err := json.Unmarshal(job.Data, v); err != nil {
		return &JobError{JobID: job.ID, Type: job.Type, Op: "decode data of", Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	return nil
}
