package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
)

// Run is a stored run of a workflow with the state of each step.
type Run = broker.WorkflowRun

// RunStep is one step of a run: its definition, state, attempts, output,
// last error and timings.
type RunStep = broker.WorkflowStep

// State is a run's state.
type State = broker.WorkflowState

// The run states.
const (
	StateRunning   = broker.WorkflowRunning
	StateSucceeded = broker.WorkflowSucceeded
	StateFailed    = broker.WorkflowFailed
	StateCancelled = broker.WorkflowCancelled
)

// StepState is a step's state within a run.
type StepState = broker.StepState

// The step states.
const (
	StepWaiting   = broker.StepWaiting
	StepPending   = broker.StepPending
	StepRunning   = broker.StepRunning
	StepCompleted = broker.StepCompleted
	StepFailed    = broker.StepFailed
	StepCancelled = broker.StepCancelled
)

// Data is what flows between steps: a JSON object. Numbers decode as
// json.Number so amounts keep their exact digits.
type Data = map[string]any

// Workflow is a named set of steps: the seed's Workflow. Register it with
// Engine.Register.
type Workflow struct {
	// Name identifies the workflow, e.g. "invoice.processing". Required.
	Name string
	// Steps in declared order. When no step sets DependsOn, each step
	// depends on the one before it (the seed's sequential workflow). When
	// any step sets DependsOn, the steps form a DAG: a step without
	// DependsOn starts at once, the others when all their dependencies have
	// completed.
	Steps []Step
	// OnSuccess, when set, runs once after the last step completes.
	OnSuccess func(ctx context.Context, run *Run) error
	// OnError, when set, runs once after a step has used up its attempts,
	// the run has failed and the compensations have run. run.Error and
	// run.FailedStep say what failed.
	OnError func(ctx context.Context, run *Run) error
}

// Step is one step of a workflow: the seed's WorkflowStep.
type Step struct {
	// Name identifies the step within the workflow: 1 to 128 characters.
	Name string
	// Processor names a registered StepProcessor.
	Processor string
	// RetryAttempts is how many times the step may be tried in all.
	// Defaults to 3.
	RetryAttempts int
	// RetryDelay is the delay before each retry. Zero uses the Manager's
	// backoff policy.
	RetryDelay time.Duration
	// DependsOn names the steps that must complete before this one starts.
	DependsOn []string
	// Compensation, when set, names a StepProcessor that undoes this step
	// if the run fails after it completed.
	Compensation string
	// Timeout bounds one attempt. Defaults to the Manager's Timeout.
	Timeout time.Duration
}

// StepInfo tells a step processor what it is running.
type StepInfo struct {
	RunID    string
	Workflow string
	Step     Step
	TenantID string
	// Attempt is 1 on the first try; MaxAttempts is the step's RetryAttempts.
	Attempt     int
	MaxAttempts int
	// Compensating is true when the processor runs as the step's
	// compensation.
	Compensating bool
}

// StepProcessor runs a step: the seed's StepProcessor. It receives the
// run's data merged with the outputs of the step's dependencies and returns
// the step's output, conventionally the data it was given plus what it
// added (the seed's {...data, validation}). An error is a failed attempt;
// worker.NoRetry makes it final at once.
//
// A step runs at least once: if its worker dies before the step's
// completion is recorded, it runs again. Once recorded, it never runs again.
type StepProcessor interface {
	Process(ctx context.Context, step *StepInfo, data Data) (Data, error)
}

// StepProcessorFunc adapts a function to a StepProcessor.
type StepProcessorFunc func(ctx context.Context, step *StepInfo, data Data) (Data, error)

// Process calls f.
func (f StepProcessorFunc) Process(ctx context.Context, step *StepInfo, data Data) (Data, error) {
	return f(ctx, step, data)
}

// maxStepName bounds step names so that job ids stay within limits.
const maxStepName = 128

// validate checks w against the registered processors.
func (w *Workflow) validate(procs map[string]StepProcessor) error {
	if w.Name == "" {
		return fmt.Errorf("workflow name is empty")
	}
	if len(w.Steps) == 0 {
		return fmt.Errorf("workflow %q has no steps", w.Name)
	}
	seen := map[string]bool{}
	for i, s := range w.Steps {
		switch {
		case s.Name == "" || len(s.Name) > maxStepName:
			return fmt.Errorf("workflow %q: step %d: name %q must be 1 to %d characters", w.Name, i, s.Name, maxStepName)
		case seen[s.Name]:
			return fmt.Errorf("workflow %q: step %q: declared twice", w.Name, s.Name)
		case procs[s.Processor] == nil:
			return fmt.Errorf("workflow %q: step %q: unknown step processor %q (register it first)", w.Name, s.Name, s.Processor)
		case s.Compensation != "" && procs[s.Compensation] == nil:
			return fmt.Errorf("workflow %q: step %q: unknown compensation processor %q", w.Name, s.Name, s.Compensation)
		case s.RetryAttempts < 0 || s.RetryDelay < 0 || s.Timeout < 0:
			return fmt.Errorf("workflow %q: step %q: retry attempts, retry delay and timeout must not be negative", w.Name, s.Name)
		}
		seen[s.Name] = true
	}
	for _, s := range w.Steps {
		for _, d := range s.DependsOn {
			if !seen[d] {
				return fmt.Errorf("workflow %q: step %q: depends on %q, which is not a step of the workflow", w.Name, s.Name, d)
			}
			if d == s.Name {
				return fmt.Errorf("workflow %q: step %q: depends on itself", w.Name, s.Name)
			}
		}
	}
	if cyc := broker.FindCycle(w.defs()); cyc != nil {
		return fmt.Errorf("workflow %q: step %q: dependencies form a cycle %v", w.Name, cyc[0], cyc)
	}
	return nil
}

// dependencies returns each step's effective dependencies: DependsOn, or
// the previous step when no step of the workflow declares any.
func (w *Workflow) dependencies() [][]string {
	dag := false
	for _, s := range w.Steps {
		dag = dag || len(s.DependsOn) > 0
	}
	deps := make([][]string, len(w.Steps))
	for i, s := range w.Steps {
		switch {
		case dag:
			deps[i] = s.DependsOn
		case i > 0:
			deps[i] = []string{w.Steps[i-1].Name}
		}
	}
	return deps
}

// defs returns the steps as the broker sees them (names and dependencies).
func (w *Workflow) defs() []broker.WorkflowStepDef {
	deps := w.dependencies()
	out := make([]broker.WorkflowStepDef, len(w.Steps))
	for i, s := range w.Steps {
		out[i] = broker.WorkflowStepDef{Name: s.Name, DependsOn: deps[i]}
	}
	return out
}

// step returns the step named name.
func (w *Workflow) step(name string) (*Step, bool) {
	for i := range w.Steps {
		if w.Steps[i].Name == name {
			return &w.Steps[i], true
		}
	}
	return nil, false
}

// decodeData parses a JSON object (null or empty is an empty object).
func decodeData(raw json.RawMessage) (Data, error) {
	d := Data{}
	if len(raw) == 0 || string(raw) == "null" {
		return d, nil
	}
	var tok string
	if json.Unmarshal(raw, &tok) == nil && envelope.IsSealed(tok) {
		return nil, errors.New("data is encrypted: read the run through an Engine that has its keys (Config.Encryption)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("data is not a JSON object: %w", err)
	}
	if d == nil {
		d = Data{}
	}
	return d, nil
}

// StepInput returns the data a step of run receives: the run's input, then
// the outputs of the step's dependencies in declared step order, merged key
// by key at the top level; on a conflict the dependency declared later
// wins, and any dependency output wins over the run's input.
func StepInput(run *Run, step string) (Data, error) {
	in, err := decodeData(run.Input)
	if err != nil {
		return nil, fmt.Errorf("run %s: input: %w", run.ID, err)
	}
	s := run.Step(step)
	if s == nil {
		return nil, fmt.Errorf("run %s has no step %q", run.ID, step)
	}
	deps := map[string]bool{}
	for _, d := range s.DependsOn {
		deps[d] = true
	}
	for _, d := range run.Steps {
		if !deps[d.Name] {
			continue
		}
		out, err := decodeData(d.Output)
		if err != nil {
			return nil, fmt.Errorf("run %s: output of step %q: %w", run.ID, d.Name, err)
		}
		for k, v := range out {
			in[k] = v
		}
	}
	return in, nil
}
