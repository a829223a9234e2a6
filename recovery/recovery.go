// Package recovery decides what the Manager does with a failed job
// according to the class of its error: the seed's ErrorRecovery. A Policy
// maps error classes (ValidationError, DatabaseError, NetworkError,
// BusinessLogicError, or any of your own) to a Strategy: retry with the
// strategy's own attempts and delay, or fail now; either may notify.
//
// A processor classifies an error by returning Classify(class, err), or any
// error whose chain holds a value with an ErrorType() string method.
// Unclassified errors get the Policy's Default (retry with the Manager's
// backoff and the job's own attempts). An error marked retry.NoRetry (the
// same marker as worker.NoRetry) is failed whatever its strategy says, and
// still notified if the strategy notifies; worker.RetryAfter takes
// precedence over any strategy in the Manager.
//
// Wire a Policy into a Manager with worker.ManagerConfig.Recovery.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/retry"
)

// The seed's error classes. Any string works as a class; these are the
// ones DefaultPolicy knows.
const (
	ValidationError    = "ValidationError"
	DatabaseError      = "DatabaseError"
	NetworkError       = "NetworkError"
	BusinessLogicError = "BusinessLogicError"
)

// Action is what a Strategy does with a failed job.
type Action string

// The actions.
const (
	// Retry schedules another attempt while the strategy's attempts last.
	Retry Action = "retry"
	// Fail moves the job to dead at once.
	Fail Action = "fail"
)

// Strategy says how to handle errors of one class.
type Strategy struct {
	// ErrorType is the class the strategy handles.
	ErrorType string
	// Action is Retry or Fail. Defaults to Retry.
	Action Action
	// MaxAttempts, for Retry, is how many attempts the job gets in all once
	// it fails with this class; it replaces (and is stored as) the job's
	// own MaxAttempts, so it may be higher or lower. Defaults to the job's.
	MaxAttempts int
	// Delay, for Retry, is the wait before the next attempt. Defaults to
	// the Manager's backoff.
	Delay time.Duration
	// Notify sends every failure of this class to the Policy's Notifier.
	Notify bool
}

// Validate reports the first field out of range.
func (s Strategy) Validate() error {
	switch {
	case s.Action != "" && s.Action != Retry && s.Action != Fail:
		return fmt.Errorf("strategy %q: unknown action %q (want %q or %q)", s.ErrorType, s.Action, Retry, Fail)
	case s.MaxAttempts < 0:
		return fmt.Errorf("strategy %q: max attempts %d is negative", s.ErrorType, s.MaxAttempts)
	case s.Delay < 0:
		return fmt.Errorf("strategy %q: delay %v is negative", s.ErrorType, s.Delay)
	}
	return nil
}

// Policy maps error classes to strategies.
type Policy struct {
	// Strategies by class; the first with a matching ErrorType wins.
	Strategies []Strategy
	// Default handles errors of no known class. Its zero value retries
	// with the Manager's backoff and the job's own attempts.
	Default Strategy
	// Notifier receives failures whose strategy has Notify set. Defaults
	// to a SlogNotifier on slog.Default().
	Notifier Notifier
	// TrustedNotifier says the Notifier may receive the error messages of
	// encrypted jobs (worker.Encryption), which may quote their sealed
	// data: set it only when the Notifier delivers within the store's
	// trust boundary. Defaults to false: such a notification's Error
	// names the error's kind and class only, and Withheld is set.
	TrustedNotifier bool
}

// DefaultPolicy returns the seed's example: validation errors retried up to
// 3 attempts, database errors up to 5 with 2 s between, network errors up
// to 10 with 5 s between, business-logic errors failed at once and notified.
func DefaultPolicy() *Policy {
	return &Policy{Strategies: []Strategy{
		{ErrorType: ValidationError, Action: Retry, MaxAttempts: 3},
		{ErrorType: DatabaseError, Action: Retry, MaxAttempts: 5, Delay: 2 * time.Second},
		{ErrorType: NetworkError, Action: Retry, MaxAttempts: 10, Delay: 5 * time.Second},
		{ErrorType: BusinessLogicError, Action: Fail, Notify: true},
	}}
}

// Validate checks every strategy and that no class is listed twice.
func (p *Policy) Validate() error {
	seen := map[string]bool{}
	for _, s := range p.Strategies {
		if s.ErrorType == "" {
			return errors.New("recovery policy: a strategy has no error type")
		}
		if seen[s.ErrorType] {
			return fmt.Errorf("recovery policy: error type %q is listed twice", s.ErrorType)
		}
		seen[s.ErrorType] = true
		if err := s.Validate(); err != nil {
			return fmt.Errorf("recovery policy: %w", err)
		}
	}
	if err := p.Default.Validate(); err != nil {
		return fmt.Errorf("recovery policy: default: %w", err)
	}
	return nil
}

// Decision is what the policy chose for one error.
type Decision struct {
	// Class is the error's class; empty if it has none.
	Class string
	// Strategy is the strategy that applies (the Default when Matched is
	// false), with Action filled in.
	Strategy Strategy
	// Matched reports whether a strategy of the Policy named the class.
	Matched bool
}

// Decide classifies err and returns the strategy for it. For an error
// marked retry.NoRetry the strategy's Action is Fail, whatever the class.
func (p *Policy) Decide(err error) Decision {
	class := ErrorType(err)
	d := Decision{Class: class, Strategy: p.Default}
	if class != "" {
		for _, s := range p.Strategies {
			if s.ErrorType == class {
				d.Strategy, d.Matched = s, true
				break
			}
		}
	}
	if d.Strategy.Action == "" {
		d.Strategy.Action = Retry
	}
	if retry.IsNoRetry(err) {
		d.Strategy.Action = Fail
	}
	return d
}

// Notify sends n to the Policy's Notifier (a SlogNotifier on slog.Default
// when none is set).
func (p *Policy) Notify(ctx context.Context, n Notification) error {
	nt := p.Notifier
	if nt == nil {
		nt = SlogNotifier{}
	}
	if err := nt.Notify(ctx, n); err != nil {
		return fmt.Errorf("notify failure of job %s: %w", n.JobID, err)
	}
	return nil
}

// NotificationFor describes a failed job for a Notifier. state is where
// the job went (scheduled for a retry, or dead).
func NotificationFor(job *broker.Job, err error, d Decision, state broker.State, at time.Time) Notification {
	return Notification{
		JobID: job.ID, Queue: job.Queue, Type: job.Type, TenantID: job.TenantID, CompanyID: job.CompanyID,
		Attempt: job.Attempt, ErrorType: d.Class, Error: err.Error(), Action: d.Strategy.Action, State: state, Time: at,
	}
}
