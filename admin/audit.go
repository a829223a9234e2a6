package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
)

// What the API records in the audit trail (Config.Audit), one entry per
// request: every request to a mutating route (POST, PUT, PATCH, DELETE),
// whatever its outcome, enqueues included; and every denied request (401,
// 403) to any route, reads included. A request refused with 429 because
// its address failed too often is not recorded: the limit exists to bound
// what a client guessing tokens costs, the trail included.

// routeActions names the action of each mutating route. A mutating route
// missing here is still recorded, under its area's name and method (see
// actionOf), and the route table test fails until it is named.
var routeActions = map[string]string{
	"POST /api/v1/queues/{queue}/jobs":                       "job.enqueue",
	"POST /api/v1/queues/{queue}/jobs/batch":                 "job.enqueue_batch",
	"POST /api/v1/jobs/bulk":                                 "job.bulk",
	"POST /api/v1/jobs/{id}/retry":                           "job.retry",
	"POST /api/v1/jobs/{id}/cancel":                          "job.cancel",
	"DELETE /api/v1/jobs/{id}":                               "job.delete",
	"POST /api/v1/queues/{queue}/pause":                      "queue.pause",
	"POST /api/v1/queues/{queue}/resume":                     "queue.resume",
	"PUT /api/v1/queues/{queue}/concurrency":                 "queue.set_concurrency",
	"POST /api/v1/queues/{queue}/tenants/{tenant}/pause":     "queue.pause_tenant",
	"POST /api/v1/queues/{queue}/tenants/{tenant}/resume":    "queue.resume_tenant",
	"POST /api/v1/schedules":                                 "schedule.create",
	"PUT /api/v1/schedules/{name}":                           "schedule.update",
	"DELETE /api/v1/schedules/{name}":                        "schedule.delete",
	"POST /api/v1/schedules/{name}/pause":                    "schedule.pause",
	"POST /api/v1/schedules/{name}/resume":                   "schedule.resume",
	"POST /api/v1/schedules/{name}/trigger":                  "schedule.trigger",
	"POST /api/v1/one-time-schedules":                        "one_time_schedule.create",
	"DELETE /api/v1/one-time-schedules/{queue}/{name}":       "one_time_schedule.cancel",
	"POST /api/v1/tenants":                                   "tenant.create",
	"PUT /api/v1/tenants/{id}":                               "tenant.update",
	"POST /api/v1/tenants/{id}/purge":                        "tenant.purge",
	"POST /api/v1/tokens":                                    "token.create",
	"POST /api/v1/keys/rotate":                               "keys.rotate",
	"DELETE /api/v1/tokens/{id}":                             "token.revoke",
	"POST /api/v1/workflows/runs/{id}/cancel":                "workflow_run.cancel",
	"POST /api/v1/workflows/{name}/runs":                     "workflow_run.start",
	"POST /api/v1/companies":                                 "company.create",
	"POST /api/v1/companies/{company}/customers":             "customer.create",
	"POST /api/v1/companies/{company}/vendors":               "vendor.create",
	"POST /api/v1/companies/{company}/payments":              "payment.create",
	"POST /api/v1/companies/{company}/payments/{id}/process": "payment.process",
	"POST /api/v1/companies/{company}/invoices":              "invoice.create",
	"PUT /api/v1/companies/{company}/invoices/{id}":          "invoice.update",
	"POST /api/v1/companies/{company}/invoices/{id}/void":    "invoice.void",
	"POST /api/v1/companies/{company}/invoices/{id}/process": "invoice.process",
	"POST /api/v1/companies/{company}/bills":                 "bill.create",
	"PUT /api/v1/companies/{company}/bills/{id}":             "bill.update",
	"POST /api/v1/companies/{company}/bills/{id}/void":       "bill.void",
	"POST /api/v1/companies/{company}/bills/{id}/process":    "bill.process",
}

// areas names the area of a route by its first path segment, for the
// action of a read ("job.read") or of an unnamed mutating route.
var areas = map[string]string{
	"jobs": "job", "queues": "queue", "schedules": "schedule", "one-time-schedules": "one_time_schedule",
	"tenants": "tenant", "tokens": "token", "workers": "worker", "workflows": "workflow_run",
	"series": "series", "health": "health", "audit": "audit", "companies": "accounting",
}

// Mutating reports whether a route's method changes something.
func Mutating(pattern string) bool {
	method, _, _ := strings.Cut(pattern, " ")
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// ActionOf returns the audit action a route's requests are recorded under.
func ActionOf(pattern string) string {
	if a, ok := routeActions[pattern]; ok {
		return a
	}
	method, path, _ := strings.Cut(pattern, " ")
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/api/v1/"), "/")
	area, ok := areas[first]
	if !ok {
		area = "api"
	}
	if !Mutating(pattern) {
		return area + ".read"
	}
	return area + "." + strings.ToLower(method)
}

// targetOf names what a request acts on: the route's path up to its last
// wildcard, with the request's values, e.g. "jobs/01J..." for a retry, or
// the whole path when it has none ("jobs/bulk").
func targetOf(pattern string, r *http.Request) string {
	_, path, _ := strings.Cut(pattern, " ")
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	last := -1
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			last = i
		}
	}
	if last >= 0 {
		segs = segs[:last+1]
	}
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = r.PathValue(strings.Trim(s, "{}."))
		}
	}
	return strings.Join(segs, "/")
}

// auditNote is what a handler adds to its request's entry.
type auditNote struct {
	tenant  string
	changes any
}

type auditNoteKey struct{}

// noteAudit records, for the request's audit entry, the tenant of what it
// acted on (if not empty) and what changed (if not nil). It must never be
// given a payload or a secret.
func noteAudit(ctx context.Context, tenant string, changes any) {
	n, ok := ctx.Value(auditNoteKey{}).(*auditNote)
	if !ok {
		return
	}
	if tenant != "" {
		n.tenant = tenant
	}
	if changes != nil {
		n.changes = changes
	}
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RequestIDHeader carries a request's id: the client's, if it sent a
// usable one, else one the server makes. The answer carries it back, and
// the request's audit entry holds it.
const RequestIDHeader = "X-Request-ID"

// requestID returns the request's id.
func requestID(r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if id != "" && len(id) <= 128 && strings.IndexFunc(id, func(c rune) bool { return c > unicode.MaxASCII || !unicode.IsPrint(c) }) < 0 {
		return id
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// audited is one request on its way to the trail. An answer the trail
// must record first is held in held until it is recorded: the whole
// answer of a mutating route, and the denials and errors the server
// writes itself on any route. A read's own answer, which is never
// recorded unless denied, goes straight to the client.
type audited struct {
	s       *Server
	pattern string
	r       *http.Request
	w       *statusWriter
	held    *heldAnswer // nil without a trail: nothing waits for one
	note    *auditNote
	id      string
}

// startAudit prepares the request's entry: it wraps w to learn the status
// and r's context to take the handler's note.
func (s *Server) startAudit(w http.ResponseWriter, r *http.Request, pattern string) *audited {
	a := &audited{s: s, pattern: pattern, w: &statusWriter{ResponseWriter: w}, note: &auditNote{}, id: requestID(r)}
	a.w.Header().Set(RequestIDHeader, a.id)
	a.r = r.WithContext(context.WithValue(r.Context(), auditNoteKey{}, a.note))
	if s.cfg.Audit != nil {
		a.held = &heldAnswer{header: http.Header{}}
	}
	return a
}

// errorWriter is where the server writes the answers it makes itself
// (denials, a handler's returned error, a panic's 500).
func (a *audited) errorWriter() http.ResponseWriter {
	if a.held != nil {
		return a.held
	}
	return a.w
}

// handlerWriter is where the route's handler writes its answer.
func (a *audited) handlerWriter() http.ResponseWriter {
	if a.held != nil && Mutating(a.pattern) {
		return a.held
	}
	return a.w
}

// discard drops what the handler wrote but has not been sent, so that a
// panic's 500 is the whole answer.
func (a *audited) discard() {
	if a.held != nil {
		a.held.reset()
	}
}

// finish records the request's entry, if it is one the trail keeps (p is
// the caller, nil if it was not authenticated), and only then sends the
// answer held for it. If the entry cannot be recorded, an answer that
// acknowledged the action (a status below 400) is replaced by a 503
// not_audited error saying the action was carried out: the trail's promise
// is that no audited action is acknowledged unrecorded. A refusal (a
// denial, a failed request) is still sent as it was: nothing was done.
func (a *audited) finish(p *Principal) {
	status := a.w.status
	if status == 0 && a.held != nil {
		status = a.held.status
	}
	if status == 0 {
		status = http.StatusOK
	}
	if e := a.entry(p, status); e != nil {
		if _, err := a.s.cfg.Audit.Record(a.r.Context(), e); err != nil {
			a.unrecorded(e, err)
		}
	}
	if a.held != nil {
		a.held.sendTo(a.w)
	}
}

// unrecorded handles an entry the trail failed to record: it is logged
// whole, the one place left that holds it, and an acknowledgement still
// held is replaced by the error. A handler that wrote nothing acknowledged
// too: net/http answers it 200.
func (a *audited) unrecorded(e *audit.Entry, err error) {
	acknowledged := e.Outcome == audit.OK
	a.s.log.Error("admin: the audit trail did not record a request", "action", e.Action, "target", e.Target,
		"status", e.Status, "request_id", a.id, "token_id", e.TokenID, "tenant", e.Tenant,
		"changes", string(e.Changes), "answer_withheld", acknowledged, "err", err)
	if !acknowledged {
		return
	}
	a.held.reset()
	retry := "retrying it would do it again"
	if a.r.Header.Get(IdempotencyHeader) != "" {
		retry = "retrying it with the same " + IdempotencyHeader + " returns its answer without doing it again"
	}
	writeError(a.held, Errorf(http.StatusServiceUnavailable, CodeNotAudited, "",
		"%s on %s was carried out, but its audit entry could not be recorded, so its answer is withheld (request id %s); %s",
		e.Action, e.Target, a.id, retry))
}

// entry returns the request's entry, or nil if the trail does not keep
// it.
func (a *audited) entry(p *Principal, status int) *audit.Entry {
	denied := status == http.StatusUnauthorized || status == http.StatusForbidden
	if a.s.cfg.Audit == nil || !(denied || Mutating(a.pattern)) || p == nil && status == http.StatusTooManyRequests {
		return nil
	}
	e := &audit.Entry{
		Action: ActionOf(a.pattern), Target: targetOf(a.pattern, a.r), Status: status,
		RequestID: a.id, Remote: clientAddr(a.r), Tenant: a.note.tenant,
	}
	switch {
	case denied:
		e.Outcome = audit.Denied
	case status >= 400:
		e.Outcome = audit.Failed
	default:
		e.Outcome = audit.OK
	}
	if p != nil {
		e.TokenID, e.TokenName, e.Role, e.Scope = p.TokenID, p.Name, string(p.Role), p.TenantID
		if e.Tenant == "" {
			e.Tenant = p.TenantID
		}
	}
	if a.note.changes != nil {
		b, err := json.Marshal(a.note.changes)
		if err != nil || len(b) > maxAuditChanges {
			b = []byte(`{"omitted":"too large to record"}`)
		}
		e.Changes = b
	}
	return e
}

// maxAuditChanges bounds the changes one entry records.
const maxAuditChanges = 8 << 10

// AuditPage is one page of the audit trail, newest first.
type AuditPage struct {
	Entries []*audit.Entry `json:"entries"`
	// NextCursor continues the listing; empty at the end.
	NextCursor string `json:"nextCursor,omitempty"`
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	Tenant string    // entries of one tenant (its tokens', and about its jobs and settings)
	Actor  string    // a token's id or name
	Action string    // an action, or its area ("job" matches "job.retry")
	Since  time.Time // inclusive
	Until  time.Time // exclusive
}

func (s *Server) auditRoutes() {
	s.handle("GET /api/v1/audit", RoleViewer, s.auditList)
}

// auditList lists the store's trail, which other processes may write
// even when this server records none (Config.Audit nil). A tenant-scoped
// token sees its tenant's entries only: its index, read as such, not a
// filtered listing.
func (s *Server) auditList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q := r.URL.Query()
	tenant, err := tenantScope(p, q.Get("tenant"), "tenant")
	if err != nil {
		return err
	}
	f := audit.Filter{Tenant: tenant, Actor: q.Get("actor"), Action: q.Get("action")}
	for name, at := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			if *at, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return Errorf(http.StatusBadRequest, CodeBadRequest, name, "%s %q is not an RFC 3339 time", name, v)
			}
		}
	}
	if v := q.Get("cursor"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before < 1 {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "cursor", "cursor %q is not one this API gave", v)
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > audit.MaxList {
			return Errorf(http.StatusBadRequest, CodeBadRequest, "limit", "limit %q must be 1..%d", v, audit.MaxList)
		}
	}
	page, err := audit.List(r.Context(), s.cfg.Broker, f, limit)
	if err != nil {
		return storeErr(err)
	}
	out := AuditPage{Entries: page.Entries}
	if out.Entries == nil {
		out.Entries = []*audit.Entry{}
	}
	if page.Next > 0 {
		out.NextCursor = strconv.FormatInt(page.Next, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditJobs wraps an enqueue's answer so that the request's audit entry
// holds the ids of the jobs added (never their data) and their tenant,
// when they share one.
func auditJobs(ctx context.Context, answer func([]*broker.Job) any) func([]*broker.Job) any {
	return func(jobs []*broker.Job) any {
		ids := make([]string, len(jobs))
		tenant := ""
		for i, j := range jobs {
			ids[i] = j.ID
			if i == 0 || j.TenantID == tenant {
				tenant = j.TenantID
			} else {
				tenant = ""
			}
		}
		noteAudit(ctx, tenant, map[string]any{"jobs": ids})
		return answer(jobs)
	}
}

// auditBulk notes a bulk action's filter and outcome, and the ids of the
// jobs it selected (up to maxAuditIDs; the count says how many in all).
func auditBulk(ctx context.Context, req *BulkRequest, tenant string, jobs []*broker.Job, out *BulkResponse) {
	ids := make([]string, 0, min(len(jobs), maxAuditIDs))
	for _, j := range jobs[:min(len(jobs), maxAuditIDs)] {
		ids = append(ids, j.ID)
	}
	noteAudit(ctx, tenant, map[string]any{"filter": req.Filter, "dryRun": req.DryRun, "matched": out.Matched,
		"done": out.Done, "failed": out.Failed, "jobs": ids})
}

// maxAuditIDs bounds the job ids one entry lists.
const maxAuditIDs = 100
