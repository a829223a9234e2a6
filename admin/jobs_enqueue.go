package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// EnqueueRequest is the body of POST /api/v1/queues/{queue}/jobs.
type EnqueueRequest struct {
	// Type selects the processor. Required.
	Type string `json:"type"`
	// Data is the payload, any JSON value.
	Data json.RawMessage `json:"data,omitempty"`
	// Priority is 1 (most urgent) to 1000; 0 or absent means 3.
	Priority int `json:"priority,omitempty"`
	// Delay postpones the job by this many milliseconds.
	Delay int64 `json:"delay,omitempty"`
	// Attempts is how many times the job may be tried; 0 means the
	// service's default.
	Attempts int `json:"attempts,omitempty"`
	// TenantID is the job's tenant. A tenant-scoped token may leave it out
	// (its tenant is used) or name its own tenant only.
	TenantID  string `json:"tenantId,omitempty"`
	CompanyID string `json:"companyId,omitempty"`
}

// BatchRequest is the body of POST /api/v1/queues/{queue}/jobs/batch.
type BatchRequest struct {
	Jobs []EnqueueRequest `json:"jobs"`
}

// BatchResponse answers a batch: the jobs in the order given.
type BatchResponse struct {
	Jobs []*Job `json:"jobs"`
}

// Limits of a request, beyond the body size.
const (
	// MaxBatch bounds the jobs of one batch request.
	MaxBatch = 1000
	// maxDelay bounds delay: a job scheduled further ahead is a schedule.
	maxDelay = 366 * 24 * time.Hour
	// maxAttempts bounds attempts.
	maxAttempts = 1000
	// maxText bounds type, tenantId and companyId.
	maxText = 256
)

// spec checks one enqueue request made by p and returns the job to add;
// field names the request's place in errors ("" for a single job,
// "jobs[3]." in a batch). A tenant-scoped token naming another tenant is
// 403; everything else wrong is 422 naming the field.
func (e *EnqueueRequest) spec(p *Principal, field string) (worker.JobSpec, error) {
	bad := func(f, format string, args ...any) error {
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, field+f, format, args...)
	}
	switch {
	case e.Type == "":
		return worker.JobSpec{}, bad("type", "type is required")
	case len(e.Type) > maxText:
		return worker.JobSpec{}, bad("type", "type has %d bytes; the limit is %d", len(e.Type), maxText)
	case e.Priority != 0 && (e.Priority < broker.MinPriority || e.Priority > broker.MaxPriority):
		return worker.JobSpec{}, bad("priority", "priority %d is outside %d..%d", e.Priority, broker.MinPriority, broker.MaxPriority)
	case e.Delay < 0 || e.Delay > maxDelay.Milliseconds():
		return worker.JobSpec{}, bad("delay", "delay %d ms is outside 0..%d", e.Delay, maxDelay.Milliseconds())
	case e.Attempts < 0 || e.Attempts > maxAttempts:
		return worker.JobSpec{}, bad("attempts", "attempts %d is outside 1..%d", e.Attempts, maxAttempts)
	case len(e.TenantID) > maxText || len(e.CompanyID) > maxText:
		return worker.JobSpec{}, bad("tenantId", "tenantId and companyId have at most %d bytes", maxText)
	}
	tenant := e.TenantID
	if !p.CrossTenant() {
		if tenant != "" && tenant != p.TenantID {
			return worker.JobSpec{}, Errorf(http.StatusForbidden, CodeForbidden, field+"tenantId", "this token may enqueue only for tenant %q", p.TenantID)
		}
		tenant = p.TenantID
	}
	s := worker.JobSpec{
		Type: e.Type, Priority: e.Priority, Delay: time.Duration(e.Delay) * time.Millisecond,
		MaxAttempts: e.Attempts, TenantID: tenant, CompanyID: e.CompanyID,
	}
	if len(e.Data) > 0 {
		s.Data = []byte(e.Data)
	}
	return s, nil
}

func (s *Server) enqueueOne(w http.ResponseWriter, r *http.Request, p *Principal) error {
	queue, err := queueParam(r)
	if err != nil {
		return err
	}
	var req EnqueueRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	spec, err := req.spec(p, "")
	if err != nil {
		return err
	}
	return s.enqueue(w, r, p, queue, []worker.JobSpec{spec}, req, func(jobs []*broker.Job) any { return jobOf(jobs[0]) })
}

func (s *Server) enqueueBatch(w http.ResponseWriter, r *http.Request, p *Principal) error {
	queue, err := queueParam(r)
	if err != nil {
		return err
	}
	var req BatchRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	specs, err := req.specs(p)
	if err != nil {
		return err
	}
	return s.enqueue(w, r, p, queue, specs, req, func(jobs []*broker.Job) any { return BatchResponse{Jobs: jobsOf(jobs)} })
}

// specs checks every job of a batch.
func (b *BatchRequest) specs(p *Principal) ([]worker.JobSpec, error) {
	if len(b.Jobs) == 0 || len(b.Jobs) > MaxBatch {
		return nil, Errorf(http.StatusUnprocessableEntity, CodeInvalid, "jobs", "a batch holds 1..%d jobs, not %d", MaxBatch, len(b.Jobs))
	}
	specs := make([]worker.JobSpec, len(b.Jobs))
	for i := range b.Jobs {
		sp, err := b.Jobs[i].spec(p, "jobs["+strconv.Itoa(i)+"].")
		if err != nil {
			return nil, err
		}
		specs[i] = sp
	}
	return specs, nil
}

// enqueue adds specs to queue all or none and answers 201 with
// answer(jobs); with an Idempotency-Key header it goes through the key's
// record (see idempotent).
func (s *Server) enqueue(w http.ResponseWriter, r *http.Request, p *Principal, queue string, specs []worker.JobSpec, req any, answer func([]*broker.Job) any) error {
	c, err := s.client(p)
	if err != nil {
		return err
	}
	answer = auditJobs(r.Context(), answer)
	if key, ok, err := idempotencyKey(r); err != nil {
		return err
	} else if ok {
		return s.idempotent(w, r, p, c, queue, key, specs, req, answer)
	}
	jobs, err := c.AddMany(r.Context(), queue, specs)
	if err != nil {
		return storeErr(err)
	}
	writeJSON(w, http.StatusCreated, answer(jobs))
	return nil
}
