package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ScheduleStore is an optional capability of a Broker: it stores named
// schedules (package schedule's Cron) and claims their ticks atomically.
// Both brokers of this module implement it; test for it with a type
// assertion. Without it, package schedule refuses to run (there is no safe
// fallback: exactly-one-job-per-tick needs the atomic claim).
//
// The broker does not interpret a schedule's Spec or TimeZone: the caller
// (package schedule) computes tick times and asks the broker to claim them.
// The broker guarantees that each (schedule, tick) is claimed at most once,
// whatever the number of callers and processes, and never before the tick
// is due by the broker's own clock.
type ScheduleStore interface {
	// ScheduleUpsert creates or replaces the schedule named s.Name and returns
	// it as stored. CreatedAt, LastTick and Paused of an existing schedule are
	// kept (Paused changes only through SchedulePause). Version grows with
	// every upsert. When the schedule is new or its Spec, TimeZone or queue
	// changed, Since is set to the broker's now, so ticks before the change are
	// never claimed; otherwise Since is kept. Returns an *InvalidError if s
	// fails Validate.
	ScheduleUpsert(ctx context.Context, s *Schedule) (*Schedule, error)

	// ScheduleGet returns one schedule. ErrScheduleNotFound if absent.
	ScheduleGet(ctx context.Context, name string) (*Schedule, error)

	// ScheduleList returns every schedule, sorted by name, and the broker's
	// clock when it read them.
	ScheduleList(ctx context.Context) (*ScheduleListResult, error)

	// ScheduleDelete removes a schedule and its claim state. Jobs it already
	// enqueued stay. ErrScheduleNotFound if absent.
	ScheduleDelete(ctx context.Context, name string) error

	// SchedulePause sets or clears the schedule's Paused flag; a paused
	// schedule's ticks are refused by ScheduleClaim. Idempotent.
	// ErrScheduleNotFound if absent.
	SchedulePause(ctx context.Context, name string, paused bool) error

	// ScheduleClaim claims one tick of a schedule and, in the same atomic
	// step, inserts the tick's job (p.Job, with ID and RunAt = p.Tick). The
	// claim succeeds only if the schedule exists, is not paused, still has
	// p.Version, p.Tick is after both Since and LastTick, and p.Tick is not
	// after the broker's now. On success LastTick becomes p.Tick. When the
	// job cannot be inserted because its unique key is held or its queue is
	// full, the tick is still consumed (Status says which) and no job is
	// written. Only errors that leave nothing changed are returned as errors:
	// ErrScheduleNotFound, *InvalidError, ErrClosed, or a storage failure.
	ScheduleClaim(ctx context.Context, p *ScheduleClaimParams) (*ScheduleClaimResult, error)

	// JobReschedule moves a scheduled or pending job to run at runAt: the job
	// becomes scheduled if runAt is after the broker's now, else pending, in
	// one atomic step. ErrNotFound if absent, ErrWrongState for a job that is
	// active or finished.
	JobReschedule(ctx context.Context, queue, id string, runAt time.Time) (*Job, error)
}

// ErrScheduleNotFound: no schedule with that name exists.
var ErrScheduleNotFound = errors.New("schedule not found")

// Schedule is a named, recurring schedule as a ScheduleStore keeps it.
type Schedule struct {
	// Name identifies the schedule; see ValidateScheduleName.
	Name string `json:"name"`
	// Spec is the cron spec, interpreted by package schedule.
	Spec string `json:"spec"`
	// TimeZone is an IANA zone name ("" means UTC), interpreted by package
	// schedule.
	TimeZone string `json:"time_zone,omitempty"`
	// Job is the template of each tick's job. ID, Delay and RunAt are
	// ignored; Job.Queue is the schedule's queue.
	Job JobInsertParams `json:"job"`
	// CatchUp and CatchUpWindow are the missed-tick policy, interpreted by
	// package schedule.
	CatchUp       string        `json:"catch_up,omitempty"`
	CatchUpWindow time.Duration `json:"catch_up_window,omitempty"`

	// The fields below are set by the store; ScheduleUpsert ignores them.

	// Paused schedules claim no ticks.
	Paused bool `json:"paused"`
	// Version grows with every upsert.
	Version int64 `json:"version"`
	// CreatedAt and UpdatedAt are broker times.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Since is the broker time of the last change to the spec, time zone or
	// queue: only ticks after it are claimed.
	Since time.Time `json:"since"`
	// LastTick is the latest claimed tick; zero if none.
	LastTick time.Time `json:"last_tick,omitzero"`
}

// ScheduleListResult is every stored schedule.
type ScheduleListResult struct {
	Schedules []*Schedule
	// Now is the broker's clock at the read.
	Now time.Time
}

// ScheduleClaimParams names a tick to claim.
type ScheduleClaimParams struct {
	Name string
	// Version is the schedule version the tick was computed from; the claim
	// is refused (ClaimChanged) if the schedule was upserted since. Zero
	// skips the check.
	Version int64
	// Tick is the fire time. Brokers keep it to the millisecond.
	Tick time.Time
	// Job is the job to insert: the schedule's template with a deterministic
	// ID derived from the schedule and the tick. Its Queue must be the
	// schedule's queue. RunAt and Delay are ignored: the job is due at Tick.
	Job *JobInsertParams
}

// ClaimStatus says what ScheduleClaim did.
type ClaimStatus string

// The claim outcomes. Only ClaimOK, ClaimUniqueHeld and ClaimQueueFull
// consume the tick.
const (
	ClaimOK         ClaimStatus = "ok"          // tick claimed, job inserted
	ClaimUniqueHeld ClaimStatus = "unique_held" // tick claimed, no job: an unfinished job holds the unique key
	ClaimQueueFull  ClaimStatus = "queue_full"  // tick claimed, no job: the queue is full
	ClaimTaken      ClaimStatus = "taken"       // refused: this or a later tick was claimed already
	ClaimEarly      ClaimStatus = "early"       // refused: the tick is after the broker's now
	ClaimPaused     ClaimStatus = "paused"      // refused: the schedule is paused
	ClaimChanged    ClaimStatus = "changed"     // refused: the schedule's version differs
	ClaimTooOld     ClaimStatus = "too_old"     // refused: the tick is not after Since
)

// ScheduleClaimResult reports a claim.
type ScheduleClaimResult struct {
	Status ClaimStatus
	// Job is the inserted job when Status is ClaimOK.
	Job *Job
	// LastTick is the schedule's latest claimed tick after the call.
	LastTick time.Time
	// Now is the broker's clock during the claim.
	Now time.Time
}

// MaxScheduleNameLen bounds schedule names.
const MaxScheduleNameLen = 128

// ValidateScheduleName checks a schedule name: 1 to MaxScheduleNameLen
// letters, digits and "._-:", like a queue name, so that it fits in key
// names and job ids.
func ValidateScheduleName(name string) error {
	return validateName("schedule name", name, MaxScheduleNameLen)
}

// Validate checks a schedule before it is stored and returns an
// *InvalidError naming the first bad field.
func (s *Schedule) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if s == nil {
		return bad("schedule", "is nil")
	}
	if err := ValidateScheduleName(s.Name); err != nil {
		return bad("name", "%v", err)
	}
	if err := checkText("spec", s.Spec, 1024, true); err != nil {
		return bad("spec", "%v", err)
	}
	if err := checkText("time_zone", s.TimeZone, 256, false); err != nil {
		return bad("time_zone", "%v", err)
	}
	if s.CatchUpWindow < 0 {
		return bad("catch_up_window", "%v is negative", s.CatchUpWindow)
	}
	return s.templateCheck()
}

// templateCheck validates the job template with a stand-in id.
func (s *Schedule) templateCheck() error {
	p := s.Job
	p.ID = "cron:" + s.Name + ":0"
	if err := p.Validate(); err != nil {
		ie := err.(*InvalidError)
		ie.Field = "job." + ie.Field
		return ie
	}
	return nil
}

// Validate checks claim parameters and returns an *InvalidError naming the
// first bad field.
func (p *ScheduleClaimParams) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if p == nil {
		return bad("claim", "is nil")
	}
	if err := ValidateScheduleName(p.Name); err != nil {
		return bad("name", "%v", err)
	}
	if p.Tick.IsZero() || p.Tick.UnixMilli() <= 0 {
		return bad("tick", "%v is not a time after 1970", p.Tick)
	}
	if p.Job == nil {
		return bad("job", "is nil")
	}
	if err := p.Job.Validate(); err != nil {
		ie := err.(*InvalidError)
		ie.Field = "job." + ie.Field
		return ie
	}
	return nil
}
