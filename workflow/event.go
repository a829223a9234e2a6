package workflow

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
)

// EventKind names what happened to a run or a step.
type EventKind string

// The events an Engine reports through Config.OnEvent.
const (
	// EventRunStarted: Execute created a run (not when an idempotency key
	// returned an existing one).
	EventRunStarted EventKind = "run_started"
	// EventRunSucceeded: the run's last step completed.
	EventRunSucceeded EventKind = "run_succeeded"
	// EventRunFailed: a step died, failing the run.
	EventRunFailed EventKind = "run_failed"
	// EventRunCompensated: every compensation of a failed run completed.
	EventRunCompensated EventKind = "run_compensated"
	// EventStepFinished: a step's (or compensation's) processor returned,
	// after Duration, with Err.
	EventStepFinished EventKind = "step_finished"
)

// Event is one thing that happened to a run. Run outcomes are reported
// once, by the engine whose transition made them, in whichever process
// that is.
type Event struct {
	Kind     EventKind
	Workflow string
	RunID    string
	// Step, Compensating, Duration and Err describe a finished step
	// attempt (EventStepFinished only).
	Step         string
	Compensating bool
	Duration     time.Duration
	Err          error
}

// RunTracer traces the start of runs: package tracing's Tracer implements
// it. Its methods are called concurrently, from every Execute.
type RunTracer interface {
	// StartRun starts the span of one Execute of workflow in queue for
	// tenant ("" for none) and returns its context; end is called once,
	// when Execute returns, with the run's id ("" on error), whether
	// Execute created it (false when an idempotency key found an existing
	// run, whose jobs carry the trace that created it) and Execute's error.
	StartRun(ctx context.Context, queue, workflow, tenant string) (context.Context, func(runID string, created bool, err error))
	// Inject adds ctx's trace context to the headers every job of the new
	// run carries.
	Inject(ctx context.Context, headers map[string]string)
}

// emit calls Config.OnEvent, if any. A panicking hook is logged and
// otherwise ignored, as worker.ManagerConfig.OnEvent's is.
func (e *Engine) emit(ev Event) {
	if e.cfg.OnEvent == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			e.cfg.Logger.Error("workflow: OnEvent hook panicked", "event", string(ev.Kind), "panic", v)
		}
	}()
	e.cfg.OnEvent(ev)
}

// outcomeEvents maps the store's run outcomes to events.
var outcomeEvents = map[runstore.Outcome]EventKind{
	runstore.OutcomeSucceeded:   EventRunSucceeded,
	runstore.OutcomeFailed:      EventRunFailed,
	runstore.OutcomeCompensated: EventRunCompensated,
}

func (e *Engine) onOutcome(run *broker.WorkflowRun, o runstore.Outcome) {
	e.emit(Event{Kind: outcomeEvents[o], Workflow: run.Workflow, RunID: run.ID})
}
