package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/internal/ctxdeadline"
)

// ClientConfig configures a Client. The zero value works.
type ClientConfig struct {
	// Queues, when set, is the list of queues jobs may be added to; adding
	// to any other queue fails (the seed's JobQueue({queues})). Defaults to
	// any valid queue name.
	Queues []string
	// DefaultMaxAttempts applies to jobs that set no MaxAttempts. Defaults
	// to 3 (the seed's WORKER_RETRY_ATTEMPTS).
	DefaultMaxAttempts int
	// DefaultTTL applies to jobs that set no TTL. Defaults to none (the
	// service sets QUEUE_DEFAULT_TTL).
	DefaultTTL time.Duration
	// MaxQueueLength rejects adds with ErrQueueFull once a queue holds this
	// many scheduled + pending jobs. Defaults to no limit (the service sets
	// QUEUE_MAX_LENGTH).
	MaxQueueLength int
	// MaxPayloadBytes caps a job's JSON data. Defaults to 1 MiB; at most
	// broker.MaxDataBytes.
	MaxPayloadBytes int
	// Timeout bounds each call of the Client whose context has no earlier
	// deadline, so that during a broker outage an Add returns an error
	// (the broker's, or context.DeadlineExceeded) instead of waiting on
	// the broker's reconnects. The caller's context always applies too: a
	// call returns by whichever deadline comes first. A call that times out
	// after the broker received it may have taken effect (an insert is
	// atomic: the job is stored whole or not at all). Defaults to
	// DefaultClientTimeout, except on a broker that serves every call in
	// this process (broker.InProcess: the embedded store), which no outage
	// can stall: there only the caller's context bounds calls by default.
	// Negative: only the caller's context bounds calls. Calls whose
	// context has neither deadline nor cancel (context.Background) share
	// one timer: they are bounded by Timeout plus at most 10 ms
	// (ctxdeadline.Slack; a hundredth of Timeout below one second, a
	// thousandth above ten).
	Timeout time.Duration
	// AddMiddleware wraps every Add and AddMany, outermost first, e.g. to
	// trace enqueues and store the trace context in the jobs' Headers
	// (see package tracing). Defaults to none: adds then pay nothing for it.
	AddMiddleware []AddMiddleware
	// Schemas, when set, checks every job's payload against its type's
	// schema before anything is stored (package jobschema implements
	// it): a payload that fails is ErrInvalidJob wrapping the validator's
	// error, which names the first failing field. Defaults to no checks.
	Schemas PayloadValidator
	// Encryption, when set, seals the data of the jobs of its queues and
	// types before they are stored, and Get and List return them opened
	// (a value that does not open is returned as stored). With no Keys,
	// adds to its queues and types are refused (ErrInvalidJob), so that
	// nothing meant to be encrypted is stored in plain text. Defaults to
	// none: data is stored as given.
	Encryption *Encryption
}

// PayloadValidator checks a job's JSON payload (nil for none) for its job
// type: what ClientConfig.Schemas takes. ValidatePayload must be safe for
// concurrent use and return nil for a valid payload, or an error matching
// ErrInvalidJob that says what is wrong.
type PayloadValidator interface {
	ValidatePayload(jobType string, data json.RawMessage) error
}

// AddFunc adds specs to queue atomically and returns the stored jobs in
// order: what a Client's AddMiddleware wraps. Add calls it with one spec.
type AddFunc func(ctx context.Context, queue string, specs []JobSpec) ([]*Job, error)

// AddMiddleware wraps the Client's AddFunc. It may change the specs (it
// owns the slice, not the Headers maps, which it must clone to change)
// before calling next, and must return next's jobs and error.
type AddMiddleware func(next AddFunc) AddFunc

// DefaultClientTimeout is the default ClientConfig.Timeout: long enough for
// a large AddMany and for a Redis failover, short enough that a request
// handler adding a job learns about an outage while it can still answer.
const DefaultClientTimeout = 5 * time.Second

// DefaultMaxPayloadBytes is the default cap on a job's JSON data.
const DefaultMaxPayloadBytes = 1 << 20

// Client adds jobs and inspects queues: the seed's JobQueue. It is safe for
// concurrent use. It does not own the broker: closing the broker is the
// caller's business.
//
// A Client sees every tenant's jobs; Tenant returns a view scoped to one.
type Client struct {
	b      broker.Broker
	cfg    ClientConfig
	tenant string // the scope; "" for every tenant
	// wrapped is the AddMiddleware around addSpecs; nil without any.
	wrapped AddFunc
	// deadlines bounds calls by cfg.Timeout; shared with Tenant's views.
	deadlines *ctxdeadline.Shared
}

// Tenant returns a view of the client scoped to one tenant, for code that
// acts on a tenant's behalf (an API request authenticated as that tenant).
// The broker enforces the scope: Get, Cancel, Retry and Delete of another
// tenant's job, or of a job with no tenant, fail with ErrNotFound exactly
// as for a job that does not exist, and change nothing; List and Stats see
// only the tenant's jobs. Add and AddMany give jobs the tenant, and reject
// a JobSpec naming another one. tenantID must not be empty. The view shares
// the client's broker and config.
func (c *Client) Tenant(tenantID string) (*Client, error) {
	if tenantID == "" {
		return nil, fmt.Errorf("worker: scope client to a tenant: %w: tenant id is empty", ErrInvalidJob)
	}
	v := *c
	v.tenant = tenantID
	if v.wrapped != nil {
		// The middleware must reach the view's addSpecs, which adds under
		// the view's scope, not the parent's.
		v.wrapped = v.wrap(v.addSpecs)
	}
	return &v, nil
}

// TenantID returns the tenant the client is scoped to, or "" for a client
// that sees every tenant.
func (c *Client) TenantID() string { return c.tenant }

// NewClient returns a Client on b.
func NewClient(b broker.Broker, cfg ClientConfig) (*Client, error) {
	if b == nil {
		return nil, errors.New("worker: new client: broker is nil")
	}
	if cfg.DefaultMaxAttempts == 0 {
		cfg.DefaultMaxAttempts = 3
	}
	if cfg.MaxPayloadBytes == 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultClientTimeout
		if ip, ok := b.(broker.InProcess); ok && ip.InProcess() {
			cfg.Timeout = -1
		}
	}
	switch {
	case cfg.DefaultMaxAttempts < 1:
		return nil, fmt.Errorf("worker: new client: default max attempts %d is below 1", cfg.DefaultMaxAttempts)
	case cfg.DefaultTTL < 0:
		return nil, fmt.Errorf("worker: new client: default ttl %v is negative", cfg.DefaultTTL)
	case cfg.MaxQueueLength < 0:
		return nil, fmt.Errorf("worker: new client: max queue length %d is negative", cfg.MaxQueueLength)
	case cfg.MaxPayloadBytes < 0 || cfg.MaxPayloadBytes > broker.MaxDataBytes:
		return nil, fmt.Errorf("worker: new client: max payload bytes %d is outside [1, %d]", cfg.MaxPayloadBytes, broker.MaxDataBytes)
	}
	for _, q := range cfg.Queues {
		if err := broker.ValidateQueueName(q); err != nil {
			return nil, fmt.Errorf("worker: new client: %w", err)
		}
	}
	cfg.Queues = slices.Clone(cfg.Queues)
	for i, mw := range cfg.AddMiddleware {
		if mw == nil {
			return nil, fmt.Errorf("worker: new client: add middleware %d is nil", i)
		}
	}
	cfg.AddMiddleware = slices.Clone(cfg.AddMiddleware)
	if cfg.Encryption != nil {
		if err := cfg.Encryption.checkScope(); err != nil {
			return nil, fmt.Errorf("worker: new client: %w", err)
		}
	}
	c := &Client{b: b, cfg: cfg, deadlines: new(ctxdeadline.Shared)}
	if len(cfg.AddMiddleware) > 0 {
		c.wrapped = c.wrap(c.addSpecs)
	}
	return c, nil
}

// wrap returns next inside the Client's AddMiddleware.
func (c *Client) wrap(next AddFunc) AddFunc {
	for i := len(c.cfg.AddMiddleware) - 1; i >= 0; i-- {
		next = c.cfg.AddMiddleware[i](next)
	}
	return next
}

// addSpecs is the AddFunc the AddMiddleware wraps.
func (c *Client) addSpecs(ctx context.Context, queue string, specs []JobSpec) ([]*Job, error) {
	if len(specs) == 1 {
		job, err := c.add(ctx, queue, specs[0])
		if err != nil {
			return nil, err
		}
		return []*Job{job}, nil
	}
	return c.addMany(ctx, queue, specs)
}

// bound applies the Client's Timeout to ctx. Calls whose context has no
// deadline and no cancel share a context ending Timeout after them, to
// within ctxdeadline.Slack, rather than arm a timer each.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.Timeout < 0 {
		return ctx, func() {}
	}
	return c.deadlines.Bound(ctx, c.cfg.Timeout)
}

// Broker returns the broker the client writes to.
func (c *Client) Broker() broker.Broker { return c.b }

func (c *Client) checkQueue(op, queue string) error {
	if err := broker.ValidateQueueName(queue); err != nil {
		// No Queue: the reason quotes the bad name already.
		return &QueueError{Op: op, Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	if len(c.cfg.Queues) > 0 && !slices.Contains(c.cfg.Queues, queue) {
		return &QueueError{Queue: queue, Op: op, Err: fmt.Errorf("%w: unknown queue (configured: %v)", ErrInvalidJob, c.cfg.Queues)}
	}
	return nil
}

// params turns a spec into broker parameters. rnd, when not nil, supplies
// the random bits of a generated id (AddMany reads a batch's at once).
func (c *Client) params(queue string, s *JobSpec, rnd io.Reader) (*broker.JobInsertParams, error) {
	// The broker validates the params, JSON included: checking here too
	// would only repeat the work.
	data, err := marshalData(s.Data)
	if err != nil {
		return nil, &broker.InvalidError{Index: -1, Field: "data", Reason: err.Error()}
	}
	if len(data) > c.cfg.MaxPayloadBytes {
		return nil, &broker.InvalidError{Index: -1, Field: "data", Reason: fmt.Sprintf("payload is %d bytes, the limit is %d", len(data), c.cfg.MaxPayloadBytes)}
	}
	if c.cfg.Schemas != nil {
		if err := c.cfg.Schemas.ValidatePayload(s.Type, data); err != nil {
			return nil, err
		}
	}
	tenant := s.TenantID
	switch {
	case c.tenant == "":
	case tenant == "":
		tenant = c.tenant
	case tenant != c.tenant:
		return nil, &broker.InvalidError{Index: -1, Field: "tenant_id", Reason: fmt.Sprintf("tenant %q is not the client's tenant %q", tenant, c.tenant)}
	}
	id := s.ID
	if id == "" {
		var u uuid.UUID
		var err error
		if rnd != nil {
			u, err = uuid.NewV7FromReader(rnd)
		} else {
			u, err = uuid.NewV7()
		}
		if err != nil {
			return nil, fmt.Errorf("generate job id: %w", err)
		}
		id = u.String()
	}
	p := &broker.JobInsertParams{
		ID: id, Queue: queue, Type: s.Type, Data: data, Priority: s.Priority,
		MaxAttempts: s.MaxAttempts, TenantID: tenant, CompanyID: s.CompanyID,
		Headers: s.Headers, UniqueKey: s.UniqueKey, Timeout: s.Timeout,
		Delay: s.Delay, RunAt: s.RunAt, TTL: s.TTL, MaxQueueLength: c.cfg.MaxQueueLength,
		DeleteOnComplete: s.DeleteOnComplete,
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = c.cfg.DefaultMaxAttempts
	}
	if p.TTL == 0 {
		p.TTL = c.cfg.DefaultTTL
	}
	if c.cfg.Encryption.Applies(queue, s.Type) {
		// Sealed here, where the id is known: the envelope binds it.
		if c.cfg.Encryption.Keys == nil {
			return nil, &broker.InvalidError{Index: -1, Field: "queue", Reason: fmt.Sprintf("jobs of queue %q, type %q are encrypted and no encryption key is configured", queue, s.Type)}
		}
		b := envelope.Binding{Tenant: tenant, Queue: queue, Type: s.Type, JobID: id, Field: fieldData}
		if p.Data, err = c.cfg.Encryption.sealJSON(p.Data, b); err != nil {
			return nil, fmt.Errorf("encrypt job data: %w", err)
		}
	}
	return p, nil
}

// marshalData encodes v as JSON. Raw JSON ([]byte, json.RawMessage) is
// passed through unchecked: the broker's validation checks it.
func marshalData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return d, nil
	case []byte:
		return d, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode payload as JSON: %v", err)
	}
	return b, nil
}

// encodeData is marshalData that also checks raw JSON.
func encodeData(v any) (json.RawMessage, error) {
	raw, err := marshalData(v)
	switch v.(type) {
	case json.RawMessage, []byte: // passed through unchecked
		if len(raw) > 0 && !json.Valid(raw) {
			return nil, errors.New("payload is not valid JSON")
		}
	}
	return raw, err
}

// Add adds one job to queue and returns it once it is durable (the seed's
// jobQueue.add). Errors: ErrInvalidJob (with an *InvalidError naming the
// field), ErrDuplicate (with a *DuplicateError naming the existing job),
// ErrQueueFull. On error nothing is written.
func (c *Client) Add(ctx context.Context, queue string, spec JobSpec) (*Job, error) {
	if c.wrapped == nil {
		return c.add(ctx, queue, spec)
	}
	jobs, err := c.wrapped(ctx, queue, []JobSpec{spec})
	if err != nil {
		return nil, err
	}
	if len(jobs) != 1 {
		return nil, &JobError{JobID: spec.ID, Type: spec.Type, Queue: queue, Op: "add",
			Err: fmt.Errorf("add middleware returned %d jobs for one spec", len(jobs))}
	}
	return jobs[0], nil
}

func (c *Client) add(ctx context.Context, queue string, spec JobSpec) (*Job, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkQueue("add to", queue); err != nil {
		return nil, err
	}
	// Errors name spec.ID, not p.ID: a generated id was never stored.
	p, err := c.params(queue, &spec, nil)
	if err != nil {
		return nil, &JobError{JobID: spec.ID, Type: spec.Type, Queue: queue, Op: "add", Err: err}
	}
	job, err := c.b.JobInsert(ctx, p)
	if err != nil {
		return nil, &JobError{JobID: spec.ID, Type: spec.Type, Queue: queue, Op: "add", Err: rejection(err)}
	}
	return job, nil
}

// InsertParams returns the broker parameters Add would insert spec into
// queue with (defaults filled in, an id generated, the client's tenant
// scope applied), for a caller that inserts through broker.Committer's
// Commit together with other writes in one atomic step (the admin API
// records an idempotency key with the job it inserts). Errors are Add's
// checks before the broker: ErrInvalidJob naming the field.
func (c *Client) InsertParams(queue string, spec JobSpec) (*broker.JobInsertParams, error) {
	if err := c.checkQueue("add to", queue); err != nil {
		return nil, err
	}
	p, err := c.params(queue, &spec, nil)
	if err != nil {
		return nil, &JobError{JobID: spec.ID, Type: spec.Type, Queue: queue, Op: "add", Err: err}
	}
	return p, nil
}

// AddMany adds jobs to queue atomically: all are stored or none. Errors as
// for Add; an *InvalidError carries the index of the first bad spec.
func (c *Client) AddMany(ctx context.Context, queue string, specs []JobSpec) ([]*Job, error) {
	if c.wrapped == nil || len(specs) == 0 {
		return c.addMany(ctx, queue, specs)
	}
	// The middleware may change its slice; the caller's stays as it was.
	return c.wrapped(ctx, queue, slices.Clone(specs))
}

func (c *Client) addMany(ctx context.Context, queue string, specs []JobSpec) ([]*Job, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkQueue("add to", queue); err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, &QueueError{Queue: queue, Op: "add to", Err: &broker.InvalidError{Index: -1, Field: "jobs", Reason: "no jobs given"}}
	}
	// One read of the system's random source for the batch's generated ids
	// instead of one per id.
	var rnd io.Reader
	if len(specs) > 1 {
		buf := make([]byte, 16*len(specs))
		if _, err := rand.Read(buf); err != nil {
			return nil, &QueueError{Queue: queue, Op: "add to", Err: fmt.Errorf("generate job ids: %w", err)}
		}
		rnd = bytes.NewReader(buf)
	}
	ps := make([]*broker.JobInsertParams, len(specs))
	for i := range specs {
		p, err := c.params(queue, &specs[i], rnd)
		if err != nil {
			var ie *broker.InvalidError
			if errors.As(err, &ie) {
				ie.Index = i
			} else {
				err = fmt.Errorf("job at index %d: %w", i, err)
			}
			return nil, &QueueError{Queue: queue, Op: "add to", Err: err}
		}
		ps[i] = p
	}
	jobs, err := c.b.JobInsertMany(ctx, ps)
	if err != nil {
		// The rejection names the job at fault: by index (invalid), by
		// id or unique key (duplicate).
		return nil, &QueueError{Queue: queue, Op: "add to", Err: rejection(err)}
	}
	return jobs, nil
}

// Get returns a job. ErrNotFound if it does not exist or is outside the
// client's tenant scope.
func (c *Client) Get(ctx context.Context, queue, id string) (*Job, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkJobRef("get", queue, id); err != nil {
		return nil, err
	}
	job, err := c.b.JobGet(ctx, &broker.JobGetParams{Queue: queue, ID: id, TenantID: c.tenant})
	if err != nil {
		return nil, &JobError{JobID: id, Op: "get", Err: err}
	}
	return c.opened(job), nil
}

// Cancel cancels a scheduled, pending or active job. A running job's
// context is cancelled at its next lease heartbeat. ErrWrongState if the
// job already finished; ErrNotFound as for Get.
func (c *Client) Cancel(ctx context.Context, queue, id string) (*Job, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkJobRef("cancel", queue, id); err != nil {
		return nil, err
	}
	job, err := c.b.JobCancel(ctx, &broker.JobCancelParams{Queue: queue, ID: id, TenantID: c.tenant})
	if err != nil {
		return nil, &JobError{JobID: id, Op: "cancel", Err: err}
	}
	return job, nil
}

// Retry moves a dead, cancelled or expired job back to pending with its
// attempts reset. ErrNotFound as for Get.
func (c *Client) Retry(ctx context.Context, queue, id string) (*Job, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkJobRef("retry", queue, id); err != nil {
		return nil, err
	}
	job, err := c.b.JobRetry(ctx, &broker.JobRetryParams{Queue: queue, ID: id, TenantID: c.tenant})
	if err != nil {
		return nil, &JobError{JobID: id, Op: "retry", Err: err}
	}
	return job, nil
}

// Delete removes a job that is not running. ErrNotFound as for Get.
func (c *Client) Delete(ctx context.Context, queue, id string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkJobRef("delete", queue, id); err != nil {
		return err
	}
	if err := c.b.JobDelete(ctx, &broker.JobDeleteParams{Queue: queue, ID: id, TenantID: c.tenant}); err != nil {
		return &JobError{JobID: id, Op: "delete", Err: err}
	}
	return nil
}

// opened returns job with its sealed values opened, or as stored when
// the client has no Encryption or a value does not open (an operator
// inspecting a tampered job sees what is stored).
func (c *Client) opened(job *Job) *Job {
	if c.cfg.Encryption == nil {
		return job
	}
	if c.cfg.Encryption.Keys == nil {
		return job
	}
	if o, err := c.cfg.Encryption.OpenJob(job); err == nil {
		return o
	}
	return job
}

func (c *Client) checkJobRef(op, queue, id string) error {
	if err := broker.ValidateQueueName(queue); err != nil {
		return &JobError{JobID: id, Op: op, Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	if id == "" {
		return &JobError{Op: op, Err: fmt.Errorf("%w: job id is empty", ErrInvalidJob)}
	}
	return nil
}

// Stats counts a queue's jobs by state (only the tenant's, for a scoped
// client).
func (c *Client) Stats(ctx context.Context, queue string) (*QueueStats, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, &QueueError{Queue: queue, Op: "stats of", Err: fmt.Errorf("%w: %v", ErrInvalidJob, err)}
	}
	s, err := c.b.QueueStats(ctx, &broker.QueueStatsParams{Queue: queue, TenantID: c.tenant})
	if err != nil {
		return nil, &QueueError{Queue: queue, Op: "stats of", Err: err}
	}
	return s, nil
}

// Length returns the number of jobs waiting in a queue (pending plus
// scheduled): the seed's getLength.
func (c *Client) Length(ctx context.Context, queue string) (int64, error) {
	s, err := c.Stats(ctx, queue)
	if err != nil {
		return 0, err
	}
	return s.Pending + s.Scheduled, nil
}

// ListParams selects jobs for List.
type ListParams = broker.JobListParams

// ListResult is a page of jobs.
type ListResult = broker.JobListResult

// List lists a queue's jobs in one state, optionally only one tenant's
// (p.TenantID) and of one type, a page at a time (follow NextOffset until
// it is -1, or Cursor as p.After until it is "", which jobs added or
// removed between pages do not shift). A tenant's listing is served by an
// index. A scoped client lists only its tenant's jobs: p.TenantID may be
// empty or name it.
func (c *Client) List(ctx context.Context, p ListParams) (*ListResult, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := p.Validate(); err != nil {
		return nil, &QueueError{Queue: p.Queue, Op: "list", Err: err}
	}
	if c.tenant != "" {
		if p.TenantID != "" && p.TenantID != c.tenant {
			return nil, &QueueError{Queue: p.Queue, Op: "list", Err: fmt.Errorf("%w: tenant %q is not the client's tenant %q", ErrInvalidJob, p.TenantID, c.tenant)}
		}
		p.TenantID = c.tenant
	}
	r, err := c.b.JobList(ctx, &p)
	if err != nil {
		return nil, &QueueError{Queue: p.Queue, Op: "list", Err: err}
	}
	if c.cfg.Encryption != nil {
		for i, j := range r.Jobs {
			r.Jobs[i] = c.opened(j)
		}
	}
	return r, nil
}

// Queues names every known queue.
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	qs, err := c.b.QueueList(ctx)
	if err != nil {
		return nil, fmt.Errorf("worker: list queues: %w", err)
	}
	return qs, nil
}

// Pause stops workers from fetching a queue's jobs; adds still succeed.
func (c *Client) Pause(ctx context.Context, queue string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkQueue("pause", queue); err != nil {
		return err
	}
	if err := c.b.QueuePause(ctx, queue); err != nil {
		return &QueueError{Queue: queue, Op: "pause", Err: err}
	}
	return nil
}

// Resume undoes Pause.
func (c *Client) Resume(ctx context.Context, queue string) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if err := c.checkQueue("resume", queue); err != nil {
		return err
	}
	if err := c.b.QueueResume(ctx, queue); err != nil {
		return &QueueError{Queue: queue, Op: "resume", Err: err}
	}
	return nil
}
