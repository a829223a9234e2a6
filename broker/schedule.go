package broker

import (
	"errors"
	"fmt"
	"time"
)

// ErrScheduleNotFound: no schedule with that name exists.
var ErrScheduleNotFound = errors.New("schedule not found")

// Schedule is a named, recurring schedule as package schedule stores it
// (on a broker.Committer).
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
	// ManagedBy says who owns the schedule's definition: "" for code or
	// the admin API, ManagedByConfig for a schedule declared in the
	// service's configuration, which the admin API shows but does not
	// change or delete.
	ManagedBy string `json:"managed_by,omitempty"`
	// ConfigFile names the configuration file that declared a schedule
	// managed by config ("" when the configuration was built in code).
	ConfigFile string `json:"config_file,omitempty"`

	// The fields below are set by the store; an upsert ignores them.

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

// ManagedByConfig is Schedule.ManagedBy of a schedule declared in the
// service's configuration.
const ManagedByConfig = "config"

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
	if s.ManagedBy != "" && s.ManagedBy != ManagedByConfig {
		return bad("managed_by", "%q: want %q or nothing", s.ManagedBy, ManagedByConfig)
	}
	if err := checkText("config_file", s.ConfigFile, 4096, false); err != nil {
		return bad("config_file", "%v", err)
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
