package broker

import (
	"encoding/json"
	"fmt"
	"time"
)

// The types below describe workflow runs as package workflow stores them
// (through internal/runstore, on a broker.Committer): the seam carries no
// workflow rule of its own. A run is a DAG of steps, stored whole at
// creation; each step is carried by one ordinary job, inserted when all the
// steps it depends on have completed; optional compensation jobs undo
// completed steps after a failure, and optional hook jobs run once when the
// run succeeds or fails. Every job of a run lives in the run's queue.

// WorkflowState is where a run is in its life.
type WorkflowState string

// The run states.
const (
	WorkflowRunning   WorkflowState = "running"
	WorkflowSucceeded WorkflowState = "succeeded"
	WorkflowFailed    WorkflowState = "failed"
	WorkflowCancelled WorkflowState = "cancelled"
)

// Valid reports whether s is a known run state.
func (s WorkflowState) Valid() bool {
	switch s {
	case WorkflowRunning, WorkflowSucceeded, WorkflowFailed, WorkflowCancelled:
		return true
	}
	return false
}

// StepState is where a step of a run is.
type StepState string

// The step states. A step's job may retry while the step is pending or
// running; Attempts counts the attempts started.
const (
	StepWaiting   StepState = "waiting"   // a dependency has not completed yet
	StepPending   StepState = "pending"   // its job is enqueued (waiting to run or to retry)
	StepRunning   StepState = "running"   // its job is leased by a worker
	StepCompleted StepState = "completed" // done; Output holds its result
	StepFailed    StepState = "failed"    // its job died: attempts used up
	StepCancelled StepState = "cancelled" // the run failed or was cancelled first
)

// CompensationState is where a step's compensation is ("" when none ran).
type CompensationState string

// The compensation states.
const (
	CompensationPending   CompensationState = "pending"
	CompensationCompleted CompensationState = "completed"
	CompensationFailed    CompensationState = "failed"
)

// WorkflowJob is the template of one job of a run: it is inserted, with the
// run's tenant and company, when its step is unblocked.
type WorkflowJob struct {
	ID          string          `json:"id"`   // unique within the queue
	Type        string          `json:"type"` // selects the processor
	Data        json.RawMessage `json:"data,omitempty"`
	Priority    int             `json:"priority,omitempty"`
	MaxAttempts int             `json:"max_attempts"` // >= 1
	Timeout     time.Duration   `json:"timeout,omitempty"`
}

// WorkflowStepDef is one step of a run as stored at creation.
type WorkflowStepDef struct {
	Name         string       `json:"name"`
	DependsOn    []string     `json:"depends_on,omitempty"`
	Job          WorkflowJob  `json:"job"`
	Compensation *WorkflowJob `json:"compensation,omitempty"`
}

// WorkflowRunCreateParams describes a run to create.
type WorkflowRunCreateParams struct {
	ID             string // required; unique within the queue
	Queue          string // every job of the run lives here
	Workflow       string // the workflow's name
	TenantID       string // set on the run and on each of its jobs
	CompanyID      string // set on each of its jobs
	IdempotencyKey string // optional: a second create with it returns the first run
	Input          json.RawMessage
	// Headers are set on each of its jobs (e.g. the trace context of the
	// run's creator), within JobInsertParams' limits.
	Headers map[string]string
	// Steps in declared order. A step's job is inserted once every step in
	// its DependsOn has completed; steps with no dependency start at once.
	Steps []WorkflowStepDef
	// OnSuccess and OnFailure, when set, are inserted once when the run
	// succeeds, or fails (after the compensations).
	OnSuccess *WorkflowJob
	OnFailure *WorkflowJob
}

// WorkflowJobCompleteParams completes a job of a run.
type WorkflowJobCompleteParams struct {
	JobCompleteParams
	Run string // the run the job belongs to
	// Attempt and StartedAt describe the completing attempt as its job
	// records them (optional; Attempt >= 0, and StartedAt set with it).
	// When Attempt is set, the run's document records a completed step's
	// attempts and timings, so that reading the run (its success hook, a
	// listing) reads no job for that step: a completed job's record never
	// changes.
	Attempt   int
	StartedAt time.Time
}

// WorkflowJobFailParams records a failed attempt of a job of a run.
type WorkflowJobFailParams struct {
	JobFailParams
	Run string
}

// WorkflowRunListParams selects runs to list.
type WorkflowRunListParams struct {
	Queue    string
	Workflow string
	State    WorkflowState // optional: "" lists every state
	Offset   int
	Limit    int // 1..1000; 0 means 100
}

// WorkflowRunMaintainParams are the retention rules of one queue's finished
// runs (package workflow's retention).
type WorkflowRunMaintainParams struct {
	Queue string
	// FinishedMaxAge removes runs finished longer ago; 0 keeps them.
	FinishedMaxAge time.Duration
	// FinishedMaxCount keeps only the n runs that finished last; 0 means
	// no limit.
	FinishedMaxCount int
	// Limit caps how many runs each rule examines per call; 0 means 1000.
	Limit int
}

// MaxWorkflowMaintainLimit bounds WorkflowRunMaintainParams.Limit.
const MaxWorkflowMaintainLimit = 10000

// Validate checks retention parameters.
func (p *WorkflowRunMaintainParams) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: maintain runs: params are nil", ErrInvalidJob)
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: maintain runs: %v", ErrInvalidJob, err)
	}
	if p.FinishedMaxAge < 0 || p.FinishedMaxCount < 0 || p.Limit < 0 || p.Limit > MaxWorkflowMaintainLimit {
		return fmt.Errorf("%w: maintain runs of %q: max age %v, max count %d and limit %d must not be negative (limit at most %d)",
			ErrInvalidJob, p.Queue, p.FinishedMaxAge, p.FinishedMaxCount, p.Limit, MaxWorkflowMaintainLimit)
	}
	return nil
}

// WorkflowRunListResult is one page of runs.
type WorkflowRunListResult struct {
	Runs       []*WorkflowRun
	NextOffset int // -1 when there is no next page
}

// WorkflowRun is a stored run.
type WorkflowRun struct {
	ID             string          `json:"id"`
	Queue          string          `json:"queue"`
	Workflow       string          `json:"workflow"`
	TenantID       string          `json:"tenant_id,omitempty"`
	CompanyID      string          `json:"company_id,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	State          WorkflowState   `json:"state"`
	Input          json.RawMessage `json:"input,omitempty"`
	// Headers are set on each of the run's jobs.
	Headers map[string]string `json:"headers,omitempty"`
	// Error is the error of the step whose failure failed the run, and
	// FailedStep its name.
	Error      string    `json:"error,omitempty"`
	FailedStep string    `json:"failed_step,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Steps in declared order.
	Steps     []*WorkflowStep `json:"steps"`
	OnSuccess *WorkflowJob    `json:"on_success,omitempty"`
	OnFailure *WorkflowJob    `json:"on_failure,omitempty"`
}

// Step returns the step named name, or nil.
func (r *WorkflowRun) Step(name string) *WorkflowStep {
	for _, s := range r.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// WorkflowStep is a step of a stored run with its progress.
type WorkflowStep struct {
	WorkflowStepDef
	State StepState `json:"state"`
	// Attempts counts the attempts of the step's job started so far.
	Attempts int             `json:"attempts"`
	Output   json.RawMessage `json:"output,omitempty"`
	// Error is the error of the last failed attempt.
	Error string `json:"error,omitempty"`
	// StartedAt is when the last attempt started; FinishedAt when the step
	// completed or failed.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// CompletedSeq orders completions within the run: 1 for the first step
	// to complete. Zero until the step completes.
	CompletedSeq int `json:"completed_seq,omitempty"`
	// Compensation is the state of the step's compensation job.
	CompensationState CompensationState `json:"compensation_state,omitempty"`
}

// MaxWorkflowSteps bounds the steps of one run.
const MaxWorkflowSteps = 256

// Validate checks p: ids, queue, job templates, unique step names,
// dependencies on existing steps and no cycle. It returns an *InvalidError
// (Index -1 for the run, else the step's position) naming the problem.
func (p *WorkflowRunCreateParams) Validate() error {
	bad := func(i int, field, format string, args ...any) error {
		return &InvalidError{Index: i, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if p == nil {
		return bad(-1, "run", "is nil")
	}
	if err := ValidateQueueName(p.Queue); err != nil {
		return bad(-1, "queue", "%v", err)
	}
	for field, v := range map[string]string{"id": p.ID, "workflow": p.Workflow} {
		if err := checkText(field, v, MaxIDLen, true); err != nil {
			return bad(-1, field, "%v", err)
		}
	}
	for field, v := range map[string]string{"tenant_id": p.TenantID, "company_id": p.CompanyID, "idempotency_key": p.IdempotencyKey} {
		if err := checkText(field, v, MaxKeyLen, false); err != nil {
			return bad(-1, field, "%v", err)
		}
	}
	if len(p.Input) > 0 && !json.Valid(p.Input) {
		return bad(-1, "input", "is not valid JSON")
	}
	if len(p.Steps) == 0 || len(p.Steps) > MaxWorkflowSteps {
		return bad(-1, "steps", "%d steps, want 1..%d", len(p.Steps), MaxWorkflowSteps)
	}
	index := make(map[string]int, len(p.Steps))
	ids := map[string]bool{}
	checkJob := func(i int, what string, j *WorkflowJob) error {
		ip := &JobInsertParams{ID: j.ID, Queue: p.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority,
			MaxAttempts: j.MaxAttempts, Timeout: j.Timeout, Headers: p.Headers}
		if err := ip.Validate(); err != nil {
			return bad(i, what, "%v", err)
		}
		if ids[j.ID] {
			return bad(i, what, "job id %q is used twice in the run", j.ID)
		}
		ids[j.ID] = true
		return nil
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		if err := checkText("step name", s.Name, MaxIDLen, true); err != nil {
			return bad(i, "name", "%v", err)
		}
		if _, dup := index[s.Name]; dup {
			return bad(i, "name", "step %q is declared twice", s.Name)
		}
		index[s.Name] = i
		if err := checkJob(i, "job", &s.Job); err != nil {
			return err
		}
		if s.Compensation != nil {
			if err := checkJob(i, "compensation", s.Compensation); err != nil {
				return err
			}
		}
	}
	for _, hook := range []*WorkflowJob{p.OnSuccess, p.OnFailure} {
		if hook != nil {
			if err := checkJob(-1, "hook", hook); err != nil {
				return err
			}
		}
	}
	for i := range p.Steps {
		for _, d := range p.Steps[i].DependsOn {
			if _, ok := index[d]; !ok {
				return bad(i, "depends_on", "step %q depends on %q, which is not a step of the run", p.Steps[i].Name, d)
			}
		}
	}
	if cyc := FindCycle(p.Steps); cyc != nil {
		return bad(index[cyc[0]], "depends_on", "steps form a cycle: %v", cyc)
	}
	return nil
}

// FindCycle returns the names of steps forming a dependency cycle (first
// name repeated at the end), or nil when the steps form a DAG. Dependencies
// on unknown steps are ignored.
func FindCycle(steps []WorkflowStepDef) []string {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.Name] = i
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(steps))
	var stack []string
	var visit func(i int) []string
	visit = func(i int) []string {
		color[i] = grey
		stack = append(stack, steps[i].Name)
		for _, d := range steps[i].DependsOn {
			j, ok := index[d]
			if !ok {
				continue
			}
			switch color[j] {
			case grey:
				for k, n := range stack {
					if n == d {
						return append(append([]string(nil), stack[k:]...), d)
					}
				}
			case white:
				if c := visit(j); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return nil
	}
	for i := range steps {
		if color[i] == white {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

// Validate checks list parameters.
func (p *WorkflowRunListParams) Validate() error {
	if err := ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("%w: list runs: %v", ErrInvalidJob, err)
	}
	if p.Workflow == "" {
		return fmt.Errorf("%w: list runs: workflow is empty", ErrInvalidJob)
	}
	if p.State != "" && !p.State.Valid() {
		return fmt.Errorf("%w: list runs: unknown state %q", ErrInvalidJob, p.State)
	}
	if p.Offset < 0 || p.Limit < 0 || p.Limit > 1000 {
		return fmt.Errorf("%w: list runs: offset %d / limit %d out of range (limit 0..1000)", ErrInvalidJob, p.Offset, p.Limit)
	}
	return nil
}
