package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
)

// Job types of the jobs that carry a run. Attach registers a processor for
// each on a Manager.
const (
	JobTypeStep         = "workflow.step"
	JobTypeCompensation = "workflow.compensation"
	JobTypeHook         = "workflow.hook"
)

// DefaultQueue is the queue runs live in unless Config.Queue says otherwise.
const DefaultQueue = "workflows"

// Config configures an Engine. The zero value works.
type Config struct {
	// Queue holds every job of every run. The Managers that run workflows
	// must serve it. Defaults to DefaultQueue.
	Queue string
	// HookAttempts is how many times OnSuccess and OnError may be tried.
	// Defaults to 3.
	HookAttempts int
	// Logger receives the engine's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// FinishedMaxAge removes runs (succeeded, failed or cancelled) that
	// finished longer ago, whole: the run, its steps, its idempotency key
	// and the jobs that carried it. Defaults to 7 days; negative keeps them.
	FinishedMaxAge time.Duration
	// FinishedMaxCount keeps only the newest n finished runs of the queue
	// and removes older ones whole. Defaults to 10,000; negative means no
	// limit.
	FinishedMaxCount int
	// RetentionInterval is how often an attached engine applies
	// FinishedMaxAge and FinishedMaxCount (see Attach and Maintain).
	// Defaults to 1m; negative never applies them in the background.
	RetentionInterval time.Duration
	// Tracer, when set, traces each Execute in a span and stores that
	// span's context in the new run's headers, so that every job of the
	// run (steps, compensations, hooks) continues one trace, even when
	// Execute's context has none. Package tracing's Tracer implements it.
	// Defaults to none.
	Tracer RunTracer
	// OnEvent, when set, is told of runs started and finished and of step
	// attempts (e.g. metrics.WorkflowMetrics.Observe). It must be fast and
	// safe for concurrent use. Defaults to none.
	OnEvent func(Event)
	// Encryption, when it applies to Queue (its Queues name it, or its
	// Types name JobTypeStep), seals each run's input at rest, bound to
	// the run, and opens the run's input, step outputs and errors where
	// they are read (step processors, hooks, Get, List, Page), so that
	// callers see plaintext. The Manager the engine is attached to seals
	// the step outputs and errors (as its jobs' results and errors): give
	// it the same Encryption, which Attach checks. Defaults to none.
	Encryption *worker.Encryption
	// OnUndecryptable, when set, is told of a run whose sealed values do
	// not open (altered, moved from another run or tenant, or sealed under
	// a key the ring lacks) when a step of it was about to run: the step
	// is not run and the run fails with the reason. For an audit trail.
	OnUndecryptable func(ctx context.Context, run *Run, err error)
}

// Engine registers step processors and workflows, starts runs and reads
// them: the seed's WorkflowEngine. It is safe for concurrent use.
type Engine struct {
	store *runstore.Store
	cfg   Config

	mu        sync.RWMutex
	procs     map[string]StepProcessor
	workflows map[string]*Workflow

	ret retention
}

// NewEngine returns an Engine on b, which must implement broker.Committer
// (both brokers of this module do).
func NewEngine(b broker.Broker, cfg Config) (*Engine, error) {
	if b == nil {
		return nil, errors.New("workflow: new engine: broker is nil")
	}
	store, err := runstore.New(b)
	if err != nil {
		return nil, fmt.Errorf("workflow: new engine: %w", err)
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if err := broker.ValidateQueueName(cfg.Queue); err != nil {
		return nil, fmt.Errorf("workflow: new engine: %w", err)
	}
	if cfg.HookAttempts == 0 {
		cfg.HookAttempts = 3
	}
	if cfg.HookAttempts < 0 {
		return nil, fmt.Errorf("workflow: new engine: hook attempts %d is negative", cfg.HookAttempts)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FinishedMaxAge == 0 {
		cfg.FinishedMaxAge = 7 * 24 * time.Hour
	}
	if cfg.FinishedMaxCount == 0 {
		cfg.FinishedMaxCount = 10000
	}
	if cfg.RetentionInterval == 0 {
		cfg.RetentionInterval = time.Minute
	}
	e := &Engine{store: store, cfg: cfg, procs: map[string]StepProcessor{}, workflows: map[string]*Workflow{},
		ret: retention{stop: make(chan struct{})}}
	if cfg.OnEvent != nil {
		store.OnOutcome = e.onOutcome
	}
	return e, nil
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Queue returns the queue the engine's runs live in.
func (e *Engine) Queue() string { return e.cfg.Queue }

// RegisterStepProcessor registers p under name (the seed's
// registerStepProcessor). Registering a name twice is an error.
func (e *Engine) RegisterStepProcessor(name string, p StepProcessor) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case name == "":
		return errors.New("workflow: register step processor: name is empty")
	case p == nil:
		return fmt.Errorf("workflow: register step processor %q: processor is nil", name)
	case e.procs[name] != nil:
		return fmt.Errorf("workflow: register step processor %q: already registered", name)
	}
	e.procs[name] = p
	return nil
}

// Register validates and registers a workflow. Its step processors must be
// registered first. It fails, naming the workflow and the step, on an
// unknown processor, a duplicate step name, a dependency on a missing step
// or a dependency cycle.
func (e *Engine) Register(w Workflow) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := w.validate(e.procs); err != nil {
		return fmt.Errorf("workflow: register: %w", err)
	}
	if e.workflows[w.Name] != nil {
		return fmt.Errorf("workflow: register: workflow %q is already registered", w.Name)
	}
	w.Steps = slices.Clone(w.Steps)
	for i := range w.Steps {
		w.Steps[i].DependsOn = slices.Clone(w.Steps[i].DependsOn)
		if w.Steps[i].RetryAttempts == 0 {
			w.Steps[i].RetryAttempts = 3
		}
	}
	e.workflows[w.Name] = &w
	return nil
}

func (e *Engine) workflow(name string) (*Workflow, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	w, ok := e.workflows[name]
	return w, ok
}

func (e *Engine) processor(name string) StepProcessor {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.procs[name]
}

// Attach registers the processors of the engine's job types on m, which
// must serve the engine's queue. Call it before m.Start.
//
// Attach also runs the engine's retention for as long as m runs (see
// worker.Manager.Go): every RetentionInterval it removes the finished runs
// past FinishedMaxAge and FinishedMaxCount (see Maintain). It ends when m
// shuts down, or at Close.
func (e *Engine) Attach(m *worker.Manager) error {
	served := false
	for _, q := range m.Config().Queues {
		served = served || q.Name == e.cfg.Queue
	}
	if !served {
		return fmt.Errorf("workflow: attach: the manager does not serve the engine's queue %q", e.cfg.Queue)
	}
	for _, t := range []string{JobTypeStep, JobTypeCompensation, JobTypeHook} {
		if err := m.HandleFunc(t, e.process); err != nil {
			return fmt.Errorf("workflow: attach: %w", err)
		}
	}
	if mine, its := e.sealed(), m.Config().Encryption.Applies(e.cfg.Queue, JobTypeStep); mine != its {
		return fmt.Errorf("workflow: attach: the manager %s queue %q and the engine %s: give both the same Config.Encryption",
			sealsWord(its), e.cfg.Queue, sealsWord(mine))
	}
	e.startRetention(m)
	return nil
}

func sealsWord(b bool) string {
	if b {
		return "seals the step outputs and errors of"
	}
	return "does not seal the step outputs and errors of"
}

// sealed reports whether the engine's runs are encrypted.
func (e *Engine) sealed() bool { return e.cfg.Encryption.Applies(e.cfg.Queue, JobTypeStep) }

// open returns run with its sealed values opened (see Config.Encryption).
func (e *Engine) open(run *Run) (*Run, error) {
	return e.cfg.Encryption.OpenRun(run)
}

// shown returns run opened for a reader; a sealed value that does not
// open stays as stored (ciphertext says nothing), so the run stays
// visible with the rest of it readable, its error saying why it failed.
// A step that reads such a run fails it (see process).
func (e *Engine) shown(run *Run) *Run {
	o, _ := e.open(run)
	return o
}

// showAll applies shown to each run of runs in place.
func (e *Engine) showAll(runs []*Run) {
	for i, r := range runs {
		runs[i] = e.shown(r)
	}
}

// ExecuteOptions are the options of one run.
type ExecuteOptions struct {
	// TenantID and CompanyID scope the run and its jobs.
	TenantID  string
	CompanyID string
	// IdempotencyKey, when set, makes Execute return the existing run of
	// this workflow and tenant that was started with the same key, instead
	// of starting another.
	IdempotencyKey string
	// Headers are set on every job of the run (over Config.Tracer's).
	Headers map[string]string
}

// Execute starts a run of the named workflow with data, a JSON object (a
// map, a struct, a json.RawMessage): the seed's execute(name, data). The
// run is durable when Execute returns; its first steps are enqueued in the
// same atomic write.
func (e *Engine) Execute(ctx context.Context, name string, data any, opts ExecuteOptions) (*Run, error) {
	run, _, err := e.Start(ctx, name, data, opts)
	return run, err
}

// Start is Execute that also reports whether it created the run: false
// when opts.IdempotencyKey named an existing run, which it returns. It
// wraps ErrUnknownWorkflow for a workflow that is not registered.
func (e *Engine) Start(ctx context.Context, name string, data any, opts ExecuteOptions) (run *Run, created bool, err error) {
	if e.cfg.Tracer == nil {
		return e.start(ctx, name, data, opts)
	}
	ctx, end := e.cfg.Tracer.StartRun(ctx, e.cfg.Queue, name, opts.TenantID)
	defer func() {
		id := ""
		if run != nil {
			id = run.ID
		}
		end(id, created, err)
	}()
	return e.start(ctx, name, data, opts)
}

// start is Start in the span Config.Tracer started, if any.
func (e *Engine) start(ctx context.Context, name string, data any, opts ExecuteOptions) (*Run, bool, error) {
	w, ok := e.workflow(name)
	if !ok {
		return nil, false, fmt.Errorf("workflow: execute %q: %w", name, ErrUnknownWorkflow)
	}
	input, err := encodeObject(data)
	if err != nil {
		return nil, false, fmt.Errorf("workflow: execute %q: %w", name, err)
	}
	u, err := uuid.NewV7()
	if err != nil {
		return nil, false, fmt.Errorf("workflow: execute %q: generate run id: %w", name, err)
	}
	p := e.createParams(w, u.String(), input, opts)
	if e.sealed() {
		if err := e.cfg.Encryption.SealRunInput(p); err != nil {
			return nil, false, fmt.Errorf("workflow: execute %q: %w", name, err)
		}
	}
	if e.cfg.Tracer != nil {
		h := map[string]string{}
		e.cfg.Tracer.Inject(ctx, h)
		maps.Copy(h, opts.Headers)
		p.Headers = h
	}
	run, created, err := e.store.WorkflowRunCreate(ctx, p)
	if err != nil {
		return nil, false, fmt.Errorf("workflow: execute %q: %w", name, err)
	}
	if created {
		e.emit(Event{Kind: EventRunStarted, Workflow: name, RunID: run.ID})
	}
	return e.shown(run), created, nil
}

// jobData is the payload of every job of a run.
type jobData struct {
	Run      string `json:"run"`
	Workflow string `json:"workflow"`
	Step     string `json:"step,omitempty"`
	Hook     string `json:"hook,omitempty"` // "success" or "error"
	// Attempts is the step's RetryAttempts, for step and compensation jobs
	// (0 in runs started before it was recorded: the job's MaxAttempts).
	Attempts int `json:"attempts,omitempty"`
}

// spareAttempts is how many attempts a step's job has beyond the step's
// RetryAttempts. An attempt whose worker dies ends when maintenance finds
// its lease expired, and maintenance, which knows nothing of runs, moves a
// job with no attempts left to dead: were the step's last attempt to end
// so, the run would stay running forever. With spares the job comes back
// once more, and process fails the step there, through the run, without
// running it (see stepLimit). Only a worker dying again in that short
// commit, spareAttempts times in a row, would strand the run.
const spareAttempts = 3

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // jobData always encodes
	return b
}

func (e *Engine) createParams(w *Workflow, id string, input json.RawMessage, opts ExecuteOptions) *broker.WorkflowRunCreateParams {
	p := &broker.WorkflowRunCreateParams{
		ID: id, Queue: e.cfg.Queue, Workflow: w.Name, TenantID: opts.TenantID, CompanyID: opts.CompanyID, Input: input,
		Headers: opts.Headers,
	}
	if opts.IdempotencyKey != "" {
		// Scoped to the workflow and tenant; lengths keep it unambiguous.
		p.IdempotencyKey = strconv.Itoa(len(w.Name)) + ":" + w.Name + ":" + strconv.Itoa(len(opts.TenantID)) + ":" +
			opts.TenantID + ":" + opts.IdempotencyKey
	}
	deps := w.dependencies()
	for i, s := range w.Steps {
		data := mustJSON(jobData{Run: id, Workflow: w.Name, Step: s.Name, Attempts: s.RetryAttempts})
		d := broker.WorkflowStepDef{Name: s.Name, DependsOn: deps[i], Job: broker.WorkflowJob{
			ID: id + ":step:" + s.Name, Type: JobTypeStep, MaxAttempts: s.RetryAttempts + spareAttempts, Timeout: s.Timeout,
			Data: data,
		}}
		if s.Compensation != "" {
			d.Compensation = &broker.WorkflowJob{
				ID: id + ":compensate:" + s.Name, Type: JobTypeCompensation, MaxAttempts: s.RetryAttempts + spareAttempts, Timeout: s.Timeout,
				Data: data,
			}
		}
		p.Steps = append(p.Steps, d)
	}
	if w.OnSuccess != nil {
		p.OnSuccess = &broker.WorkflowJob{ID: id + ":on-success", Type: JobTypeHook, MaxAttempts: e.cfg.HookAttempts,
			Data: mustJSON(jobData{Run: id, Workflow: w.Name, Hook: "success"})}
	}
	if w.OnError != nil {
		p.OnFailure = &broker.WorkflowJob{ID: id + ":on-error", Type: JobTypeHook, MaxAttempts: e.cfg.HookAttempts,
			Data: mustJSON(jobData{Run: id, Workflow: w.Name, Hook: "error"})}
	}
	return p
}

// encodeObject encodes data as a JSON object; nil is {}.
func encodeObject(data any) (json.RawMessage, error) {
	var raw json.RawMessage
	switch d := data.(type) {
	case nil:
		return json.RawMessage(`{}`), nil
	case json.RawMessage:
		raw = d
	case []byte:
		raw = d
	default:
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode data: %w", err)
		}
		raw = b
	}
	if _, err := decodeData(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Get returns a run with each step's state, attempts, output, error and
// timings. It wraps worker.ErrNotFound if there is no such run.
func (e *Engine) Get(ctx context.Context, runID string) (*Run, error) {
	run, err := e.store.WorkflowRunGet(ctx, e.cfg.Queue, runID)
	if err != nil {
		return nil, fmt.Errorf("workflow: get run %s: %w", runID, err)
	}
	return e.shown(run), nil
}

// Cancel cancels a running run: steps not yet finished are cancelled, a
// running step's job loses its lease (its context is cancelled at the next
// heartbeat and its result is discarded), and no compensation or hook
// runs. It wraps worker.ErrWrongState if the run has already finished.
func (e *Engine) Cancel(ctx context.Context, runID string) (*Run, error) {
	run, err := e.store.WorkflowRunCancel(ctx, e.cfg.Queue, runID)
	if err != nil {
		return nil, fmt.Errorf("workflow: cancel run %s: %w", runID, err)
	}
	return e.shown(run), nil
}

// ListParams selects runs to list.
type ListParams struct {
	Workflow string // required
	State    State  // optional: "" lists every state
	Offset   int
	Limit    int // 1..1000; 0 means 100
}

// ListResult is one page of runs, newest first.
type ListResult struct {
	Runs       []*Run
	NextOffset int // -1 when there is no next page
}

// List lists a workflow's runs, newest first, optionally in one state.
func (e *Engine) List(ctx context.Context, p ListParams) (*ListResult, error) {
	res, err := e.store.WorkflowRunList(ctx, &broker.WorkflowRunListParams{
		Queue: e.cfg.Queue, Workflow: p.Workflow, State: p.State, Offset: p.Offset, Limit: p.Limit,
	})
	if err != nil {
		return nil, fmt.Errorf("workflow: list runs of %q: %w", p.Workflow, err)
	}
	e.showAll(res.Runs)
	return &ListResult{Runs: res.Runs, NextOffset: res.NextOffset}, nil
}
