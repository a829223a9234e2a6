package httpproc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// CallbackType is the job type of callback deliveries. Callbacks.Attach
// registers their processor.
const CallbackType = "httpproc.callback"

// The callback event types.
const (
	EventJobCompleted      = "job.completed"
	EventJobDead           = "job.dead"
	EventJobCancelled      = "job.cancelled"
	EventWorkflowSucceeded = "workflow.succeeded"
	EventWorkflowFailed    = "workflow.failed"
	EventWorkflowCancelled = "workflow.cancelled"
)

// Callback is the JSON body of a completion callback. Job is set for job
// events, Run for workflow events.
type Callback struct {
	Type string `json:"type"`
	// Time is when the worker recorded the event (RFC 3339).
	Time time.Time    `json:"time"`
	Job  *CallbackJob `json:"job,omitempty"`
	Run  *CallbackRun `json:"run,omitempty"`
	// Result is the job's result (job.completed), or the outputs of a
	// run's steps by step name (workflow.succeeded).
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the last error of a dead job or the failed step of a run.
	Error string `json:"error,omitempty"`
}

// CallbackJob names the job a callback is about.
type CallbackJob struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Queue       string `json:"queue"`
	TenantID    string `json:"tenantId"`
	CompanyID   string `json:"companyId"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"maxAttempts"`
}

// CallbackRun names the workflow run a callback is about.
type CallbackRun struct {
	ID         string `json:"id"`
	Workflow   string `json:"workflow"`
	Queue      string `json:"queue"`
	TenantID   string `json:"tenantId"`
	CompanyID  string `json:"companyId"`
	FailedStep string `json:"failedStep,omitempty"`
}

// CallbackConfig says where completion callbacks go.
type CallbackConfig struct {
	// URL receives the callbacks. Required.
	URL string
	// Secret signs them ("whsec_" + base64). Required.
	Secret string
	// Headers are added to every delivery.
	Headers map[string]string
	// Client makes the deliveries. Defaults to a client with no timeout of
	// its own: Timeout bounds each delivery.
	Client *http.Client
	// Timeout bounds one delivery attempt. Defaults to 30s.
	Timeout time.Duration
	// MaxAttempts is how many times a delivery is tried, with the
	// Manager's backoff between attempts. Defaults to 10.
	MaxAttempts int
	// Now reads the clock for signatures and event times. Defaults to
	// time.Now.
	Now func() time.Time
	// Encryption, when set, is the Manager's: a callback carries the
	// job's result and error opened (the application gets plaintext), and
	// a callback job of an encrypted queue stores its body sealed.
	// Defaults to none.
	Encryption *worker.Encryption
}

// Callbacks tells the application, by a signed POST to its URL, when a job
// completes, dies or is cancelled, and when a workflow run succeeds, fails
// or is cancelled. Each callback is a job of type CallbackType in the queue
// of the job or run it is about, inserted in the same atomic commit that
// finishes the job, so a crash cannot lose it; it is retried like any job,
// so delivery is at least once. Its webhook-id is the same on every
// attempt: receivers deduplicate by it. Methods are safe for concurrent
// use.
type Callbacks struct {
	b       broker.Broker
	c       broker.Committer
	deliver *Processor
	cfg     CallbackConfig
}

// NewCallbacks checks cfg and returns Callbacks storing their deliveries
// in b, which must implement broker.Committer (both brokers of this module
// do).
func NewCallbacks(b broker.Broker, cfg CallbackConfig) (*Callbacks, error) {
	wrap := func(err error) error { return fmt.Errorf("httpproc: new callbacks: %w", err) }
	if b == nil {
		return nil, wrap(errors.New("broker is nil"))
	}
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, wrap(fmt.Errorf("broker %T cannot commit atomically (no broker.Committer)", b))
	}
	switch {
	case cfg.URL == "":
		return nil, wrap(errors.New("url is required"))
	case cfg.Timeout < 0:
		return nil, wrap(fmt.Errorf("timeout %v is negative", cfg.Timeout))
	case cfg.MaxAttempts < 0:
		return nil, wrap(fmt.Errorf("max attempts %d is negative", cfg.MaxAttempts))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Processor{cfg: EndpointConfig{URL: cfg.URL, Secret: cfg.Secret, Timeout: cfg.Timeout,
		Headers: cfg.Headers, Client: cfg.Client, Now: cfg.Now}}
	if err := p.init(); err != nil {
		return nil, wrap(err)
	}
	return &Callbacks{b: b, c: c, deliver: p, cfg: cfg}, nil
}

// Attach registers the delivery processor (CallbackType) on m. m must
// serve every queue whose jobs or runs have callbacks.
func (c *Callbacks) Attach(m *worker.Manager) error {
	return m.Register(CallbackType, worker.ProcessorFunc(c.process))
}

// process delivers one callback: its data is the body, signed under a
// webhook-id derived from the callback job, so every attempt carries the
// same one.
func (c *Callbacks) process(ctx context.Context, job *worker.Job) error {
	if c.deliver.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.deliver.cfg.Timeout)
		defer cancel()
	}
	if _, err := c.deliver.post(ctx, c.deliver.base.String(), messageID(job.Queue, job.ID), job.Data); err != nil {
		return outcome(err)
	}
	return nil
}

// callbackID is the id of the callback job about subject (a job id, or
// "run\x00" + a run id): one callback per job or run, whatever happens.
func callbackID(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "httpproc.callback." + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// CallbackJobID returns the id of the callback job about the job with id
// jobID (in the same queue), e.g. to watch its delivery.
func CallbackJobID(jobID string) string { return callbackID(jobID) }

// CallbackRunID returns the id of the callback job about a workflow run
// (in the run's queue).
func CallbackRunID(runID string) string { return callbackID("run\x00" + runID) }

// insertFor returns the insert of a callback about job.
func (c *Callbacks) insertFor(job *worker.Job, event string, result json.RawMessage, errText string) (*broker.CommitInsert, error) {
	var err error
	if result, err = c.cfg.Encryption.OpenResult(job, result); err != nil {
		return nil, fmt.Errorf("open result of job %s for its %s callback: %w", job.ID, event, err)
	}
	if errText, err = c.cfg.Encryption.OpenError(job, errText); err != nil {
		return nil, fmt.Errorf("open error of job %s for its %s callback: %w", job.ID, event, err)
	}
	body, err := json.Marshal(Callback{Type: event, Time: c.cfg.Now().UTC(), Result: result, Error: errText,
		Job: &CallbackJob{ID: job.ID, Type: job.Type, Queue: job.Queue, TenantID: job.TenantID, CompanyID: job.CompanyID,
			Attempt: job.Attempt, MaxAttempts: job.MaxAttempts}})
	if err != nil {
		return nil, fmt.Errorf("encode %s callback of job %s: %w", event, job.ID, err)
	}
	p := &broker.JobInsertParams{ID: CallbackJobID(job.ID), Queue: job.Queue,
		Type: CallbackType, Data: body, MaxAttempts: c.cfg.MaxAttempts, TenantID: job.TenantID, CompanyID: job.CompanyID}
	if err := c.cfg.Encryption.SealInsert(p); err != nil {
		return nil, fmt.Errorf("%s callback of job %s: %w", event, job.ID, err)
	}
	return &broker.CommitInsert{IfAbsent: true, Job: p}, nil
}

// Wrap returns p with callbacks: when a job p processes completes or dies,
// the callback is inserted in the commit that finishes it. Register the
// result: manager.Register("invoice.processing", callbacks.Wrap(p)).
func (c *Callbacks) Wrap(p worker.Processor) worker.Processor {
	return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
		if p == nil || job == nil {
			return worker.NoRetry(errors.New("httpproc: callbacks: nil processor or job"))
		}
		if err := worker.SetFinisher(ctx, jobFinisher{c: c, job: job}); err != nil {
			return err
		}
		return p.Process(ctx, job)
	})
}

// jobFinisher finishes a job together with its callback.
type jobFinisher struct {
	c   *Callbacks
	job *worker.Job
}

func (f jobFinisher) Complete(ctx context.Context, p *broker.JobCompleteParams) error {
	ins, err := f.c.insertFor(f.job, EventJobCompleted, p.Result, "")
	if err != nil {
		return err
	}
	_, err = f.c.c.Commit(ctx, &broker.CommitParams{Scope: f.job.Queue, Complete: []*broker.JobCompleteParams{p},
		Insert: []*broker.CommitInsert{ins}})
	return err
}

// Fail records the failed attempt, with the callback when it leaves the job
// dead: the broker's rule is dead when discarded or when the attempt was
// the last one allowed (p.MaxAttempts overriding the job's).
func (f jobFinisher) Fail(ctx context.Context, p *broker.JobFailParams) (worker.State, error) {
	limit := f.job.MaxAttempts
	if p.MaxAttempts > 0 {
		limit = p.MaxAttempts
	}
	cp := &broker.CommitParams{Scope: f.job.Queue, Fail: []*broker.JobFailParams{p}}
	if p.Discard || f.job.Attempt >= limit {
		ins, err := f.c.insertFor(f.job, EventJobDead, nil, p.Error)
		if err != nil {
			return "", err
		}
		cp.Insert = []*broker.CommitInsert{ins}
	}
	res, err := f.c.c.Commit(ctx, cp)
	if err != nil {
		return "", err
	}
	return res.Failed[0], nil
}

// CancelJob cancels a job and, in the same commit, inserts its
// job.cancelled callback; the admin API calls it (Client.Cancel sends no
// callback). tenantID scopes the call ("" for any tenant). It returns the
// job as it is after the call; an error wrapping worker.ErrNotFound if
// there is no such job (in the tenant), or worker.ErrWrongState if it has
// already finished. A job that finishes while it is being cancelled keeps
// its own outcome and its own callback.
func (c *Callbacks) CancelJob(ctx context.Context, queue, id, tenantID string) (*worker.Job, error) {
	wrap := func(err error) error { return &worker.JobError{JobID: id, Queue: queue, Op: "cancel", Err: err} }
	get := &broker.JobGetParams{Queue: queue, ID: id, TenantID: tenantID}
	job, err := c.b.JobGet(ctx, get)
	if err != nil {
		return nil, wrap(err)
	}
	switch job.State {
	case worker.StateScheduled, worker.StatePending, worker.StateActive:
	default:
		return job, wrap(fmt.Errorf("%w: the job is %s", worker.ErrWrongState, job.State))
	}
	ins, err := c.insertFor(job, EventJobCancelled, nil, "")
	if err != nil {
		return nil, wrap(err)
	}
	if _, err := c.c.Commit(ctx, &broker.CommitParams{Scope: queue, Cancel: []string{id}, Insert: []*broker.CommitInsert{ins}}); err != nil {
		return nil, wrap(err)
	}
	if job, err = c.b.JobGet(ctx, get); err != nil {
		return nil, wrap(err)
	}
	return job, nil
}
