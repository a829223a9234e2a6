package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/schedule"
)

// oneTimeRoutes registers the one-time schedule routes. A one-time
// schedule is a job due at a time under a name unique in its queue
// (schedule.OneTime), so its tenant scope is the seam's job scope.
func (s *Server) oneTimeRoutes() {
	s.handle("GET /api/v1/one-time-schedules", RoleViewer, s.oneTimeList)
	s.handle("POST /api/v1/one-time-schedules", RoleAdmin, s.oneTimeCreate)
	s.handle("GET /api/v1/one-time-schedules/{queue}/{name}", RoleViewer, s.oneTimeJob((*worker.Client).Get))
	// Cancelling keeps the job, cancelled, as any cancelled job.
	s.handle("DELETE /api/v1/one-time-schedules/{queue}/{name}", RoleOperator, s.oneTimeJob((*worker.Client).Cancel))
}

// oneTimeIn is the body of a one-time schedule to create.
type oneTimeIn struct {
	Name  string       `json:"name"`
	RunAt time.Time    `json:"runAt"`
	Job   *scheduleJob `json:"job"`
}

// oneTimeOut is a one-time schedule as the API shows it.
type oneTimeOut struct {
	Name  string      `json:"name"`
	ID    string      `json:"id"`
	RunAt time.Time   `json:"runAt"`
	State string      `json:"state"`
	Job   scheduleJob `json:"job"`
	// PayloadRedacted says Job.Data was left out
	// (Principal.SeesPayload).
	PayloadRedacted bool `json:"payloadRedacted,omitempty"`
}

// oneTimeView is j as p may see it.
func oneTimeView(j *broker.Job, p *Principal) *oneTimeOut {
	out := &oneTimeOut{Name: strings.TrimPrefix(j.ID, "once:"), ID: j.ID, RunAt: j.RunAt, State: string(j.State),
		Job: scheduleJob{Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority, Attempts: j.MaxAttempts,
			TenantID: j.TenantID, CompanyID: j.CompanyID, UniqueKey: j.UniqueKey, TimeoutMs: j.Timeout.Milliseconds()}}
	if !p.SeesPayload() {
		out.Job.Data, out.PayloadRedacted = nil, true
	}
	return out
}

// oneTime returns the service's OneTime, or a 404 when it has none.
func (s *Server) oneTime() (*schedule.OneTime, error) {
	if s.cfg.OneTime == nil {
		return nil, Errorf(http.StatusNotFound, CodeNotFound, "", "one-time schedules are not served by this service")
	}
	return s.cfg.OneTime, nil
}

func (s *Server) oneTimeList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	o, err := s.oneTime()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	queue := q.Get("queue")
	if err := broker.ValidateQueueName(queue); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "queue", "queue: %v", err)
	}
	tenant, err := tenantFor(p, q.Get("tenant"), "tenant")
	if err != nil {
		return err
	}
	jobs, err := o.ListTenant(r.Context(), queue, tenant)
	if err != nil {
		return err
	}
	out := struct {
		Schedules []*oneTimeOut `json:"schedules"`
	}{Schedules: make([]*oneTimeOut, len(jobs))}
	for i, j := range jobs {
		out.Schedules[i] = oneTimeView(j, p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) oneTimeCreate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	o, err := s.oneTime()
	if err != nil {
		return err
	}
	var in oneTimeIn
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	switch {
	case in.Job == nil:
		return Errorf(http.StatusBadRequest, CodeBadRequest, "job", "job is required")
	case in.RunAt.IsZero():
		return Errorf(http.StatusBadRequest, CodeBadRequest, "runAt", "runAt is required (RFC 3339)")
	case in.Job.TimeoutMs < 0:
		return Errorf(http.StatusBadRequest, CodeBadRequest, "job.timeoutMs", "job.timeoutMs must not be negative")
	}
	if err := broker.ValidateScheduleName(in.Name); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "name", "name: %v", err)
	}
	if err := broker.ValidateQueueName(in.Job.Queue); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "job.queue", "job.queue: %v", err)
	}
	j := in.Job
	tenant, err := tenantFor(p, j.TenantID, "job.tenantId")
	if err != nil {
		return err
	}
	// Schedule returns an existing job of the name, whoever's it is: ask
	// first so a taken name is a 409 that shows nothing of that job.
	taken := Errorf(http.StatusConflict, CodeConflict, "name", "a one-time schedule named %q exists in queue %q", in.Name, j.Queue)
	if _, err := o.Get(r.Context(), j.Queue, in.Name); err == nil {
		return taken
	} else if !errors.Is(err, broker.ErrNotFound) {
		return err
	}
	job, err := o.Schedule(r.Context(), in.Name, in.RunAt, schedule.JobTemplate{Queue: j.Queue, Type: j.Type,
		Data: j.Data, Priority: j.Priority, MaxAttempts: j.Attempts, TenantID: tenant, CompanyID: j.CompanyID,
		UniqueKey: j.UniqueKey, Timeout: time.Duration(j.TimeoutMs) * time.Millisecond})
	if err != nil {
		return scheduleError(err, in.Name)
	}
	if job.TenantID != tenant {
		return taken // created meanwhile by a request of another tenant
	}
	w.Header().Set("Location", "/api/v1/one-time-schedules/"+j.Queue+"/"+in.Name)
	writeJSON(w, http.StatusCreated, oneTimeView(job, p))
	return nil
}

// oneTimeJob answers with the one-time schedule of the path after op
// (the tenant-scoped client's Get or Cancel), so the seam makes another
// tenant's a 404.
func (s *Server) oneTimeJob(op func(c *worker.Client, ctx context.Context, queue, id string) (*worker.Job, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		if _, err := s.oneTime(); err != nil {
			return err
		}
		c, err := s.client(p)
		if err != nil {
			return err
		}
		j, err := op(c, r.Context(), r.PathValue("queue"), schedule.OneTimeJobID(r.PathValue("name")))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, oneTimeView(j, p))
		return nil
	}
}
