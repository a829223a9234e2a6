package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/workflow"
)

// workflowRoutes registers the workflow run routes: reading needs a
// viewer, starting and cancelling an operator. A tenant-scoped token sees
// and touches only its tenant's runs (a scoped list reads the tenant's own
// index; a run of another tenant is a 404).
func (s *Server) workflowRoutes() {
	s.handle("GET /api/v1/workflows", RoleViewer, s.workflowList)
	s.handle("GET /api/v1/workflows/runs", RoleViewer, s.runList)
	s.handle("GET /api/v1/workflows/runs/{id}", RoleViewer, s.runGet)
	s.handle("POST /api/v1/workflows/runs/{id}/cancel", RoleOperator, s.runCancel)
	s.handle("POST /api/v1/workflows/{name}/runs", RoleOperator, s.runStart)
}

// runStep is a step of a run as the API shows it.
type runStep struct {
	Name              string          `json:"name"`
	DependsOn         []string        `json:"dependsOn"`
	State             string          `json:"state"`
	Attempts          int             `json:"attempts"`
	Output            json.RawMessage `json:"output,omitempty"`
	Error             string          `json:"error,omitempty"`
	StartedAt         *time.Time      `json:"startedAt,omitempty"`
	FinishedAt        *time.Time      `json:"finishedAt,omitempty"`
	CompensationState string          `json:"compensationState,omitempty"`
}

// runOut is a workflow run as the API shows it.
type runOut struct {
	ID         string          `json:"id"`
	Workflow   string          `json:"workflow"`
	Queue      string          `json:"queue"`
	State      string          `json:"state"`
	TenantID   string          `json:"tenantId,omitempty"`
	CompanyID  string          `json:"companyId,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Error      string          `json:"error,omitempty"`
	FailedStep string          `json:"failedStep,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
	Steps      []runStep       `json:"steps"`
	// PayloadRedacted says Input and the steps' outputs were left out
	// (Principal.SeesPayload).
	PayloadRedacted bool `json:"payloadRedacted,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// runView is r as p may see it.
func runView(r *workflow.Run, p *Principal) *runOut {
	out := &runOut{ID: r.ID, Workflow: r.Workflow, Queue: r.Queue, State: string(r.State), TenantID: r.TenantID,
		CompanyID: r.CompanyID, Input: r.Input, Error: r.Error, FailedStep: r.FailedStep, CreatedAt: r.CreatedAt,
		FinishedAt: timePtr(r.FinishedAt), Steps: make([]runStep, len(r.Steps))}
	for i, st := range r.Steps {
		deps := st.DependsOn
		if deps == nil {
			deps = []string{}
		}
		out.Steps[i] = runStep{Name: st.Name, DependsOn: deps, State: string(st.State), Attempts: st.Attempts,
			Output: st.Output, Error: st.Error, StartedAt: timePtr(st.StartedAt), FinishedAt: timePtr(st.FinishedAt),
			CompensationState: string(st.CompensationState)}
		if !p.SeesPayload() {
			out.Steps[i].Output = nil
		}
	}
	if !p.SeesPayload() {
		out.Input, out.PayloadRedacted = nil, true
	}
	return out
}

// workflows returns the service's engine, or a 404 when it has none.
func (s *Server) workflows() (*workflow.Engine, error) {
	if s.cfg.Workflows == nil {
		return nil, Errorf(http.StatusNotFound, CodeNotFound, "", "workflows are not served by this service")
	}
	return s.cfg.Workflows, nil
}

// workflowOut is a registered workflow as the API lists it.
type workflowOut struct {
	Name string `json:"name"`
}

// workflowList lists the registered workflows, so that a client can offer
// them (runs are listed one workflow at a time).
func (s *Server) workflowList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	e, err := s.workflows()
	if err != nil {
		return err
	}
	out := struct {
		Workflows []workflowOut `json:"workflows"`
	}{Workflows: []workflowOut{}}
	for _, n := range e.Names() {
		out.Workflows = append(out.Workflows, workflowOut{Name: n})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) runList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	e, err := s.workflows()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	pp := workflow.PageParams{Workflow: q.Get("workflow"), State: workflow.State(q.Get("state")), Cursor: q.Get("cursor")}
	switch {
	case pp.Workflow == "":
		return Errorf(http.StatusBadRequest, CodeBadRequest, "workflow", "the workflow query parameter is required")
	case pp.State != "" && !pp.State.Valid():
		return Errorf(http.StatusBadRequest, CodeBadRequest, "state", "state must be running, succeeded, failed or cancelled, not %q", pp.State)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "limit", "limit must be a whole number from 1 to 1000, not %q", v)
		}
		pp.Limit = n
	}
	if q.Get("tenant") != "" || !p.CrossTenant() {
		if pp.Tenant, err = tenantFor(p, q.Get("tenant"), "tenant"); err != nil {
			return err
		}
		pp.Scoped = true
	}
	page, err := e.Page(r.Context(), pp)
	if errors.Is(err, workflow.ErrBadCursor) {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "cursor", "the cursor is not one a previous page returned")
	}
	if err != nil {
		return err
	}
	out := struct {
		Runs []*runOut `json:"runs"`
		Next string    `json:"nextCursor,omitempty"`
	}{Runs: make([]*runOut, len(page.Runs)), Next: page.Next}
	for i, run := range page.Runs {
		out.Runs[i] = runView(run, p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// scopedRun reads the run of the path for p: a run of another tenant is a
// 404, as a missing one.
func (s *Server) scopedRun(r *http.Request, p *Principal) (*workflow.Engine, *workflow.Run, error) {
	e, err := s.workflows()
	if err != nil {
		return nil, nil, err
	}
	id := r.PathValue("id")
	run, err := e.GetScoped(r.Context(), id, p.TenantID, !p.CrossTenant())
	if errors.Is(err, broker.ErrNotFound) {
		return nil, nil, Errorf(http.StatusNotFound, CodeNotFound, "id", "workflow run %q not found", id)
	}
	return e, run, err
}

func (s *Server) runGet(w http.ResponseWriter, r *http.Request, p *Principal) error {
	_, run, err := s.scopedRun(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, runView(run, p))
	return nil
}

// runCancel cancels a run, through Callbacks.CancelRun when the service
// has callbacks, so that the workflow.cancelled callback is sent.
func (s *Server) runCancel(w http.ResponseWriter, r *http.Request, p *Principal) error {
	e, run, err := s.scopedRun(r, p)
	if err != nil {
		return err
	}
	if s.cfg.Callbacks != nil {
		run, err = s.cfg.Callbacks.CancelRun(r.Context(), e, run.ID)
	} else {
		run, err = e.Cancel(r.Context(), run.ID)
	}
	if errors.Is(err, broker.ErrWrongState) {
		return Errorf(http.StatusConflict, CodeConflict, "id", "workflow run %q has finished; only a running run is cancelled", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, runView(run, p))
	return nil
}

// runIn is the body of a run to start.
type runIn struct {
	Data           json.RawMessage `json:"data"`
	TenantID       string          `json:"tenantId"`
	CompanyID      string          `json:"companyId"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

// runStart starts a run: 201 with it, or 200 with the run an earlier
// request with the same idempotency key (body or Idempotency-Key header)
// started; 422 when that run was started with other data.
func (s *Server) runStart(w http.ResponseWriter, r *http.Request, p *Principal) error {
	e, err := s.workflows()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if !e.Registered(name) {
		return Errorf(http.StatusNotFound, CodeNotFound, "name", "workflow %q is not registered", name)
	}
	var in runIn
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	key := r.Header.Get("Idempotency-Key")
	switch {
	case in.IdempotencyKey != "" && key != "" && in.IdempotencyKey != key:
		return Errorf(http.StatusBadRequest, CodeBadRequest, "idempotencyKey", "idempotencyKey differs from the Idempotency-Key header")
	case key == "":
		key = in.IdempotencyKey
	}
	data := in.Data
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		data = json.RawMessage(`{}`)
	} else if bytes.TrimSpace(data)[0] != '{' {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "data", "data must be a JSON object")
	}
	tenant, err := tenantFor(p, in.TenantID, "tenantId")
	if err != nil {
		return err
	}
	run, created, err := e.Start(r.Context(), name, data, workflow.ExecuteOptions{TenantID: tenant, CompanyID: in.CompanyID, IdempotencyKey: key})
	var inv *broker.InvalidError
	switch {
	case errors.As(err, &inv):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, apiField(inv.Field), "%s: %s", apiField(inv.Field), inv.Reason)
	case err != nil:
		return err
	case !created && !sameJSON(run.Input, data):
		return Errorf(http.StatusUnprocessableEntity, CodeIdempotency, "Idempotency-Key", "idempotency key %q started run %s with other data", key, run.ID)
	case !created:
		writeJSON(w, http.StatusOK, runView(run, p))
		return nil
	}
	w.Header().Set("Location", "/api/v1/workflows/runs/"+run.ID)
	writeJSON(w, http.StatusCreated, runView(run, p))
	return nil
}

// sameJSON reports whether two JSON documents hold equal values (key
// order and spacing aside).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, errA := json.Marshal(x)
	jb, errB := json.Marshal(y)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
