package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/schedule"
)

// scheduleRoutes registers the schedules routes. Reading needs a viewer,
// pausing, resuming and triggering an operator, and creating, changing and
// deleting an admin. A tenant-scoped token sees and touches only the
// schedules whose job belongs to its tenant (through the store's tenant
// index); the seed's tenant "all" belongs to no tenant's scope.
func (s *Server) scheduleRoutes() {
	s.handle("GET /api/v1/schedules", RoleViewer, s.scheduleList)
	s.handle("POST /api/v1/schedules", RoleAdmin, s.scheduleCreate)
	s.handle("GET /api/v1/schedules/{name}", RoleViewer, s.scheduleGet)
	s.handle("PUT /api/v1/schedules/{name}", RoleAdmin, s.scheduleUpdate)
	s.handle("DELETE /api/v1/schedules/{name}", RoleAdmin, s.scheduleDelete)
	s.handle("POST /api/v1/schedules/{name}/pause", RoleOperator, s.schedulePause(true))
	s.handle("POST /api/v1/schedules/{name}/resume", RoleOperator, s.schedulePause(false))
	s.handle("POST /api/v1/schedules/{name}/trigger", RoleOperator, s.scheduleTrigger)
	s.oneTimeRoutes()
}

// defaultNextFires is how many coming fire times a schedule shows unless
// the request asks (?next=) for another number, up to maxNextFires.
const (
	defaultNextFires = 5
	maxNextFires     = 100
)

// scheduleJob is a schedule's job template as the API reads and writes it.
type scheduleJob struct {
	Queue     string          `json:"queue"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data,omitempty"`
	Priority  int             `json:"priority,omitempty"`
	Attempts  int             `json:"attempts,omitempty"`
	TenantID  string          `json:"tenantId,omitempty"`
	CompanyID string          `json:"companyId,omitempty"`
	UniqueKey string          `json:"uniqueKey,omitempty"`
	TimeoutMs int64           `json:"timeoutMs,omitempty"`
}

// scheduleIn is the body of a create (name required) or an update (name
// optional, and then the path's).
type scheduleIn struct {
	Name            string       `json:"name"`
	Cron            string       `json:"cron"`
	TimeZone        string       `json:"timeZone"`
	Job             *scheduleJob `json:"job"`
	CatchUp         string       `json:"catchUp"`
	CatchUpWindowMs int64        `json:"catchUpWindowMs"`
}

// fireTime is one coming tick in the schedule's zone and in UTC.
type fireTime struct {
	Local string `json:"local"`
	UTC   string `json:"utc"`
}

// scheduleOut is a schedule as the API shows it.
type scheduleOut struct {
	Name            string      `json:"name"`
	Cron            string      `json:"cron"`
	TimeZone        string      `json:"timeZone"`
	Job             scheduleJob `json:"job"`
	CatchUp         string      `json:"catchUp"`
	CatchUpWindowMs int64       `json:"catchUpWindowMs"`
	Paused          bool        `json:"paused"`
	// ManagedBy is "config" for a schedule declared in the configuration
	// (read-only here) and "api" otherwise.
	ManagedBy  string     `json:"managedBy"`
	ConfigFile string     `json:"configFile,omitempty"`
	Version    int64      `json:"version"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
	LastTick   *time.Time `json:"lastTick,omitempty"`
	Next       []fireTime `json:"next"`
	// PayloadRedacted says Job.Data was left out
	// (Principal.SeesPayload).
	PayloadRedacted bool `json:"payloadRedacted,omitempty"`
}

// scheduleView is in as p may see it.
func scheduleView(in *schedule.Info, p *Principal) *scheduleOut {
	sc, j := in.Schedule, in.Job
	out := &scheduleOut{Name: sc.Name, Cron: sc.Spec, TimeZone: sc.TimeZone, CatchUp: sc.CatchUp,
		CatchUpWindowMs: sc.CatchUpWindow.Milliseconds(), Paused: sc.Paused, ManagedBy: "api", ConfigFile: sc.ConfigFile,
		Version: sc.Version, CreatedAt: sc.CreatedAt, UpdatedAt: sc.UpdatedAt, Next: []fireTime{},
		Job: scheduleJob{Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority, Attempts: j.MaxAttempts,
			TenantID: j.TenantID, CompanyID: j.CompanyID, UniqueKey: j.UniqueKey, TimeoutMs: j.Timeout.Milliseconds()}}
	if !p.SeesPayload() {
		out.Job.Data, out.PayloadRedacted = nil, true
	}
	if sc.ManagedBy != "" {
		out.ManagedBy = sc.ManagedBy
	}
	if sc.TimeZone == "" {
		out.TimeZone = "UTC"
	}
	if !sc.LastTick.IsZero() {
		t := sc.LastTick
		out.LastTick = &t
	}
	loc, err := time.LoadLocation(sc.TimeZone)
	if err != nil {
		loc = time.UTC // the spec parsed with it when stored; show UTC rather than nothing
	}
	for _, t := range in.Next {
		out.Next = append(out.Next, fireTime{Local: t.In(loc).Format(time.RFC3339), UTC: t.UTC().Format(time.RFC3339)})
	}
	return out
}

// cron returns the service's Cron, or a 404 when it has none.
func (s *Server) cron() (*schedule.Cron, error) {
	if s.cfg.Cron == nil {
		return nil, Errorf(http.StatusNotFound, CodeNotFound, "", "schedules are not served by this service")
	}
	return s.cfg.Cron, nil
}

// scopeOf is the schedule scope of p: its tenant, or every tenant.
func scopeOf(p *Principal) schedule.Scope {
	if p.CrossTenant() {
		return schedule.Scope{}
	}
	return schedule.TenantScope(p.TenantID)
}

// nextFires reads ?next=, the number of coming fire times to show.
func nextFires(r *http.Request) (int, error) {
	v := r.URL.Query().Get("next")
	if v == "" {
		return defaultNextFires, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxNextFires {
		return 0, Errorf(http.StatusBadRequest, CodeBadRequest, "next", "next must be a whole number from 0 to %d, not %q", maxNextFires, v)
	}
	return n, nil
}

// cronAndNext returns the Cron of a read and the number of fire times it
// asks for.
func (s *Server) cronAndNext(r *http.Request) (*schedule.Cron, int, error) {
	c, err := s.cron()
	if err != nil {
		return nil, 0, err
	}
	n, err := nextFires(r)
	return c, n, err
}

func (s *Server) scheduleList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, n, err := s.cronAndNext(r)
	if err != nil {
		return err
	}
	l, err := c.ListScoped(r.Context(), scopeOf(p), n)
	if err != nil {
		return scheduleError(err, "")
	}
	out := struct {
		Schedules []*scheduleOut `json:"schedules"`
	}{Schedules: make([]*scheduleOut, len(l))}
	for i, in := range l {
		out.Schedules[i] = scheduleView(in, p)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) scheduleGet(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, n, err := s.cronAndNext(r)
	if err != nil {
		return err
	}
	in, err := c.GetScoped(r.Context(), scopeOf(p), r.PathValue("name"), n)
	if err != nil {
		return scheduleError(err, r.PathValue("name"))
	}
	writeJSON(w, http.StatusOK, scheduleView(in, p))
	return nil
}

func (s *Server) scheduleCreate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.scheduleWrite(w, r, p, "")
}

func (s *Server) scheduleUpdate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	return s.scheduleWrite(w, r, p, r.PathValue("name"))
}

// scheduleWrite creates (path "") or replaces (path, the name in the URL)
// a schedule. The checks that depend on the stored schedule (it exists or
// not, its tenant, managed by config) run inside the store's
// compare-and-set, so two concurrent creates of one name make one.
func (s *Server) scheduleWrite(w http.ResponseWriter, r *http.Request, p *Principal, path string) error {
	c, err := s.cron()
	if err != nil {
		return err
	}
	var in scheduleIn
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	e, err := entryFrom(&in, p, path)
	if err != nil {
		return err
	}
	scope := scopeOf(p)
	check := func(cur *broker.Schedule) error {
		if path == "" {
			if cur != nil {
				return Errorf(http.StatusConflict, CodeConflict, "name", "a schedule named %q exists", e.Name)
			}
			return nil
		}
		if err := scope.Check(cur); err != nil {
			return err
		}
		return notManaged(cur, "change")
	}
	info, err := c.UpsertIf(r.Context(), e, check)
	if err != nil {
		return scheduleError(err, e.Name)
	}
	status := http.StatusOK
	if path == "" {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/schedules/"+e.Name)
	}
	writeJSON(w, status, scheduleView(info, p))
	return nil
}

// entryFrom turns a request body into the entry to store, taking the
// tenant from a scoped token (a body naming another tenant is refused).
func entryFrom(in *scheduleIn, p *Principal, path string) (schedule.Entry, error) {
	var e schedule.Entry
	switch {
	case path == "" && in.Name == "":
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "name", "name is required")
	case path != "" && in.Name != "" && in.Name != path:
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "name", "name %q differs from the path's %q; a schedule is not renamed", in.Name, path)
	case in.Cron == "":
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "cron", "cron is required")
	case in.Job == nil:
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "job", "job is required")
	case in.CatchUp != "" && in.CatchUp != string(schedule.CatchUpOnce) && in.CatchUp != string(schedule.CatchUpSkip):
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "catchUp", "catchUp must be %q or %q, not %q", schedule.CatchUpOnce, schedule.CatchUpSkip, in.CatchUp)
	case in.CatchUpWindowMs < 0:
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "catchUpWindowMs", "catchUpWindowMs must not be negative")
	case in.Job.TimeoutMs < 0:
		return e, Errorf(http.StatusBadRequest, CodeBadRequest, "job.timeoutMs", "job.timeoutMs must not be negative")
	}
	name := in.Name
	if path != "" {
		name = path
	}
	j := in.Job
	tenant, err := tenantFor(p, j.TenantID, "job.tenantId")
	if err != nil {
		return e, err
	}
	return schedule.Entry{Name: name, Spec: in.Cron, TimeZone: in.TimeZone, CatchUp: schedule.CatchUp(in.CatchUp),
		CatchUpWindow: time.Duration(in.CatchUpWindowMs) * time.Millisecond,
		Job: schedule.JobTemplate{Queue: j.Queue, Type: j.Type, Data: j.Data, Priority: j.Priority, MaxAttempts: j.Attempts,
			TenantID: tenant, CompanyID: j.CompanyID, UniqueKey: j.UniqueKey, Timeout: time.Duration(j.TimeoutMs) * time.Millisecond}}, nil
}

// tenantFor is the tenant a request by p acts for: p's own for a scoped
// token (a body naming another is 403), the body's for a cross-tenant one.
func tenantFor(p *Principal, body, field string) (string, error) {
	if p.CrossTenant() {
		return body, nil
	}
	if body != "" && body != p.TenantID {
		return "", Errorf(http.StatusForbidden, CodeForbidden, field, "this token acts for tenant %q only", p.TenantID)
	}
	return p.TenantID, nil
}

// notManaged refuses (409, naming the file) to do what to a schedule the
// configuration declares: the file would undo it at the next start.
func notManaged(cur *broker.Schedule, what string) error {
	if cur == nil || cur.ManagedBy != broker.ManagedByConfig {
		return nil
	}
	return Errorf(http.StatusConflict, CodeConflict, "name", "schedule %q is managed by config (%s); %s it there, not through the API", cur.Name, configFileName(cur.ConfigFile), what)
}

// configFileName names the file a resource is managed by in a refusal.
func configFileName(file string) string {
	if file == "" {
		return "the service's configuration"
	}
	return file
}

func (s *Server) scheduleDelete(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.cron()
	if err != nil {
		return err
	}
	name, scope := r.PathValue("name"), scopeOf(p)
	err = c.RemoveIf(r.Context(), name, func(cur *broker.Schedule) error {
		if err := scope.Check(cur); err != nil {
			return err
		}
		return notManaged(cur, "delete")
	})
	if err != nil {
		return scheduleError(err, name)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// schedulePause pauses or resumes a schedule. Config-managed schedules
// may be paused: pausing is an operator's act on a running system, not a
// change to what the file declares, and a restart keeps it.
func (s *Server) schedulePause(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		c, err := s.cron()
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		in, err := c.SetPausedIf(r.Context(), name, paused, scopeOf(p).Check)
		if err != nil {
			return scheduleError(err, name)
		}
		writeJSON(w, http.StatusOK, scheduleView(in, p))
		return nil
	}
}

// triggered is the answer to a trigger: the job enqueued now.
type triggered struct {
	Schedule string    `json:"schedule"`
	ID       string    `json:"id"`
	Queue    string    `json:"queue"`
	Type     string    `json:"type"`
	State    string    `json:"state"`
	TenantID string    `json:"tenantId,omitempty"`
	RunAt    time.Time `json:"runAt"`
}

func (s *Server) scheduleTrigger(w http.ResponseWriter, r *http.Request, p *Principal) error {
	c, err := s.cron()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	j, err := c.TriggerIf(r.Context(), name, scopeOf(p).Check)
	if err != nil {
		return scheduleError(err, name)
	}
	writeJSON(w, http.StatusCreated, triggered{Schedule: name, ID: j.ID, Queue: j.Queue, Type: j.Type, State: string(j.State),
		TenantID: j.TenantID, RunAt: j.RunAt})
	return nil
}

// scheduleError maps the errors of package schedule to the API's: a
// missing schedule (or one outside the scope) is 404, a bad spec or job
// template 422 naming the field.
func scheduleError(err error, name string) error {
	var apiErr *Error
	var spec *schedule.SpecError
	var inv *broker.InvalidError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, broker.ErrScheduleNotFound):
		return Errorf(http.StatusNotFound, CodeNotFound, "name", "schedule %q not found", name)
	case errors.As(err, &spec):
		field := "cron"
		if spec.Field == "time zone" {
			field = "timeZone"
		}
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, field, "%v", spec)
	case errors.As(err, &inv):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, apiField(inv.Field), "%s: %s", apiField(inv.Field), inv.Reason)
	case errors.Is(err, broker.ErrInvalidJob):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "", "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if e := errorFor(err); e.Status != http.StatusInternalServerError {
		return e
	}
	return fmt.Errorf("schedule %q: %w", name, err)
}

// apiFields maps the store's field names to the API's.
var apiFields = map[string]string{
	"spec": "cron", "time_zone": "timeZone", "catch_up_window": "catchUpWindowMs", "job.max_attempts": "job.attempts",
	"job.tenant_id": "job.tenantId", "job.company_id": "job.companyId", "job.unique_key": "job.uniqueKey",
	"job.timeout": "job.timeoutMs", "job.id": "name", "tenant_id": "tenantId", "company_id": "companyId",
	"max_attempts": "attempts", "unique_key": "uniqueKey", "idempotency_key": "idempotencyKey",
}

func apiField(f string) string {
	if a, ok := apiFields[f]; ok {
		return a
	}
	return f
}
