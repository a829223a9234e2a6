package worker

import (
	"time"
)

// EventKind names what happened to a job in a Manager.
type EventKind string

// The events a Manager reports through ManagerConfig.OnEvent.
const (
	// EventStarted: a leased job's processor is about to run.
	EventStarted EventKind = "started"
	// EventCompleted: the processor succeeded and the completion is stored.
	EventCompleted EventKind = "completed"
	// EventRetrying: the attempt failed and the job is scheduled to retry
	// after Event.RetryDelay.
	EventRetrying EventKind = "retrying"
	// EventDead: the attempt failed and the job is dead (no attempts left,
	// NoRetry, or a recovery strategy that fails at once).
	EventDead EventKind = "dead"
	// EventLeaseLost: the job's lease was lost (recovered by another
	// worker, or cancelled); its outcome was discarded.
	EventLeaseLost EventKind = "lease_lost"
	// EventHandedBack: the job was handed back to the broker without
	// counting the attempt, before it started: at shutdown, or when it
	// waited too long for a run slot after adaptive prefetch leased it
	// ahead (ManagerConfig.Prefetch). It is reported once the broker has
	// the job back, so another worker may already have started it.
	EventHandedBack EventKind = "handed_back"
)

// Event is one thing that happened to a job in a Manager. Every started
// job ends in exactly one of completed, retrying, dead, lease lost or
// handed back, unless recording its outcome in the broker failed (then the
// Manager logs the error and the lease expires).
type Event struct {
	Kind EventKind
	// Job is the job as it was leased. Observers must not modify it.
	Job *Job
	// Err is the processor's error (retrying, dead, lease lost, handed
	// back), nil otherwise.
	Err error
	// ErrorType is the error's class when a recovery policy classified it.
	ErrorType string
	// Duration is how long the processor ran (zero for started).
	Duration time.Duration
	// RetryDelay is the wait before the next attempt (retrying only).
	RetryDelay time.Duration
	// Time is when the event happened, on this machine's clock.
	Time time.Time
}

// emit calls the OnEvent hook, if any. A panicking hook is logged and
// otherwise ignored: observers never take a job or the worker down.
func (m *Manager) emit(e Event) {
	if m.cfg.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	defer func() {
		if v := recover(); v != nil {
			m.jobLog(e.Job).Error("OnEvent hook panicked", "event", string(e.Kind), "panic", v)
		}
	}()
	m.cfg.OnEvent(e)
}
