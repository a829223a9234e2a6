package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/jobschema"
)

// jobRoutes registers the jobs routes.
func (s *Server) jobRoutes() {
	s.handle("POST /api/v1/queues/{queue}/jobs", RoleOperator, s.enqueueOne)
	s.handle("POST /api/v1/queues/{queue}/jobs/batch", RoleOperator, s.enqueueBatch)
	s.handle("GET /api/v1/jobs", RoleViewer, s.listJobs)
	s.handle("POST /api/v1/jobs/bulk", RoleOperator, s.bulkJobs)
	s.handle("GET /api/v1/jobs/{id}", RoleViewer, s.getJob)
	s.handle("POST /api/v1/jobs/{id}/retry", RoleOperator, s.retryJob)
	s.handle("POST /api/v1/jobs/{id}/cancel", RoleOperator, s.cancelJob)
	s.handle("DELETE /api/v1/jobs/{id}", RoleOperator, s.deleteJob)
}

// Job is a job as the API shows it. Attempt counts the attempts started,
// StartedAt is the last one's start and LastError the last failure's whole
// error; GET /api/v1/jobs/{id} also lists the finished attempts (Attempts,
// the last broker.MaxAttemptHistory), which listings and actions leave out.
type Job struct {
	ID          string            `json:"id"`
	Queue       string            `json:"queue"`
	Type        string            `json:"type"`
	Data        json.RawMessage   `json:"data,omitempty"`
	Priority    int               `json:"priority"`
	State       string            `json:"state"`
	Attempt     int               `json:"attempt"`
	MaxAttempts int               `json:"maxAttempts"`
	TenantID    string            `json:"tenantId,omitempty"`
	CompanyID   string            `json:"companyId,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	RunAt       time.Time         `json:"runAt"`
	StartedAt   *time.Time        `json:"startedAt,omitempty"`
	FinishedAt  *time.Time        `json:"finishedAt,omitempty"`
	ExpiresAt   *time.Time        `json:"expiresAt,omitempty"`
	LastError   string            `json:"lastError,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Progress    json.RawMessage   `json:"progress,omitempty"`
	WorkerID    string            `json:"workerId,omitempty"`
	Attempts    []Attempt         `json:"attempts,omitzero"`
	// PayloadRedacted says Data, Result and Progress were left out
	// because the caller may not see them (Principal.SeesPayload).
	PayloadRedacted bool `json:"payloadRedacted,omitempty"`
}

// redactFor leaves out j's payload fields unless p may see them.
func (j *Job) redactFor(p *Principal) *Job {
	if p.SeesPayload() {
		return j
	}
	j.Data, j.Result, j.Progress, j.PayloadRedacted = nil, nil, nil, true
	return j
}

// Attempt is one finished attempt of a job (broker.AttemptRecord). Outcome
// is completed, retry_scheduled, dead, lease_expired, handed_back or
// cancelled; Error is cut to broker.MaxAttemptErrorBytes.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	WorkerID   string    `json:"workerId,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
}

// withAttempts is jobOf with the job's attempt history, empty rather than
// absent when it has none.
func withAttempts(j *broker.Job) *Job {
	out := jobOf(j)
	out.Attempts = make([]Attempt, len(j.Attempts))
	for i, a := range j.Attempts {
		out.Attempts[i] = Attempt{Attempt: a.Attempt, WorkerID: a.WorkerID, StartedAt: a.StartedAt,
			FinishedAt: a.FinishedAt, Outcome: string(a.Outcome), Error: a.Error}
	}
	return out
}

// jobOf converts a stored job.
func jobOf(j *broker.Job) *Job {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return &Job{
		ID: j.ID, Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority,
		State: string(j.State), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		TenantID: j.TenantID, CompanyID: j.CompanyID, Headers: j.Headers,
		CreatedAt: j.CreatedAt, RunAt: j.RunAt, StartedAt: opt(j.StartedAt),
		FinishedAt: opt(j.FinishedAt), ExpiresAt: opt(j.ExpiresAt), LastError: j.LastError,
		Result: j.Result, Progress: j.Progress, WorkerID: j.WorkerID,
	}
}

func jobsOf(js []*broker.Job) []*Job {
	out := make([]*Job, len(js))
	for i, j := range js {
		out[i] = jobOf(j)
	}
	return out
}

// storeErr maps an error of a store call: the API's errors and the
// broker's sentinels keep their status (see errorFor); a context error is
// left for the server's timeout handling; anything else means the store
// did not answer as a store does (connection refused, I/O error), which
// is 503, not 500.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var sch *jobschema.Error
	if errors.As(err, &sch) {
		return Errorf(http.StatusUnprocessableEntity, CodeSchema, sch.Pointer, "%s", sch.Error())
	}
	var inv *broker.InvalidError
	if errors.As(err, &inv) {
		field := inv.Field
		if field == "tenant_id" {
			field = "tenantId"
		}
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, field, "%s", inv.Error())
	}
	for _, m := range sentinelStatus {
		if errors.Is(err, m.err) {
			return err
		}
	}
	return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "", "the store is unreachable: %v", err)
}

// findJob returns the job id names, in queue if it is given, else in
// whichever queue holds it: ids are UUIDv7s unique everywhere, and an
// operator holding a bare id from a log line should not need its queue.
// The search asks each queue the store knows through c, so it costs one
// read per queue and sees only c's tenant. Two queues holding the id
// (possible only with explicit ids) is a 409 asking for ?queue=.
func (s *Server) findJob(ctx context.Context, c *worker.Client, id, queue string) (*broker.Job, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if queue != "" {
		if err := broker.ValidateQueueName(queue); err != nil {
			return nil, Errorf(http.StatusBadRequest, CodeBadRequest, "queue", "%v", err)
		}
		j, err := c.Get(ctx, queue, id)
		if errors.Is(err, broker.ErrNotFound) {
			return nil, Errorf(http.StatusNotFound, CodeNotFound, "id", "job %q not found in queue %q", id, queue)
		}
		return j, storeErr(err)
	}
	queues, err := c.Queues(ctx)
	if err != nil {
		return nil, storeErr(err)
	}
	var found *broker.Job
	for _, q := range queues {
		j, err := c.Get(ctx, q, id)
		if errors.Is(err, broker.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, storeErr(err)
		}
		if found != nil {
			return nil, Errorf(http.StatusConflict, CodeConflict, "queue", "job %q exists in queues %q and %q; name one with ?queue=", id, found.Queue, q)
		}
		found = j
	}
	if found == nil {
		return nil, Errorf(http.StatusNotFound, CodeNotFound, "id", "job %q not found", id)
	}
	return found, nil
}

// checkID refuses an id no job can have, before any store call.
func checkID(id string) error {
	if id == "" || len(id) > broker.MaxIDLen {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "id", "a job id has 1..%d bytes, not %d", broker.MaxIDLen, len(id))
	}
	return nil
}

// requestJob finds the job a /api/v1/jobs/{id} request names (its
// ?queue= optional), through p's client, and returns both.
func (s *Server) requestJob(r *http.Request, p *Principal) (*worker.Client, *broker.Job, error) {
	c, err := s.client(p)
	if err != nil {
		return nil, nil, err
	}
	j, err := s.findJob(r.Context(), c, r.PathValue("id"), r.URL.Query().Get("queue"))
	if err != nil {
		return nil, nil, err
	}
	noteAudit(r.Context(), j.TenantID, map[string]any{"queue": j.Queue, "stateBefore": j.State})
	return c, j, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p *Principal) error {
	_, j, err := s.requestJob(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, withAttempts(j).redactFor(p))
	return nil
}

func (s *Server) retryJob(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.actOnJob(w, r, p, "retry", func(ctx context.Context, c *worker.Client, j *broker.Job) (*broker.Job, error) {
		return c.Retry(ctx, j.Queue, j.ID)
	})
}

// cancelJob cancels through the service's Callbacks when it has them, so
// that the job's job.cancelled callback is sent.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.actOnJob(w, r, p, "cancel", func(ctx context.Context, c *worker.Client, j *broker.Job) (*broker.Job, error) {
		if s.cfg.Callbacks != nil {
			return s.cfg.Callbacks.CancelJob(ctx, j.Queue, j.ID, p.TenantID)
		}
		return c.Cancel(ctx, j.Queue, j.ID)
	})
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, j, err := s.requestJob(r, p)
	if err != nil {
		return err
	}
	if err := c.Delete(r.Context(), j.Queue, j.ID); err != nil {
		return jobActionErr("delete", j, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// actOnJob finds the request's job and applies act to it, answering with
// the job as it is after.
func (s *Server) actOnJob(w http.ResponseWriter, r *http.Request, p *Principal, action string, act func(context.Context, *worker.Client, *broker.Job) (*broker.Job, error)) error {
	c, j, err := s.requestJob(r, p)
	if err != nil {
		return err
	}
	after, err := act(r.Context(), c, j)
	if err != nil {
		return jobActionErr(action, j, err)
	}
	writeJSON(w, http.StatusOK, jobOf(after).redactFor(p))
	return nil
}

// jobActionErr says which state refused the action, since "wrong state"
// alone does not tell an operator what to do.
func jobActionErr(action string, j *broker.Job, err error) error {
	if errors.Is(err, broker.ErrWrongState) {
		return Errorf(http.StatusConflict, CodeConflict, "id", "cannot %s job %q: it is %s", action, j.ID, j.State)
	}
	return storeErr(err)
}

// queueParam reads and checks the {queue} path parameter.
func queueParam(r *http.Request) (string, error) {
	q := r.PathValue("queue")
	if err := broker.ValidateQueueName(q); err != nil {
		return "", Errorf(http.StatusBadRequest, CodeBadRequest, "queue", "%v", err)
	}
	return q, nil
}
