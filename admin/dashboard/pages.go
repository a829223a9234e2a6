package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/aibos/worker/admin"
)

func (d *Dashboard) routes() {
	d.page("/{$}", d.overview)
	d.page("/queues", d.queues)
	d.page("/jobs", d.jobs)
	d.page("/jobs/{id}", d.job)
	d.page("/dead", d.dead)
	d.page("/schedules", d.schedules)
	d.page("/runs", d.runs)
	d.page("/runs/{id}", d.run)
	d.page("/workers", d.workers)
	d.page("/tenants", d.tenants)
	d.page("/audit", d.audit)
	d.action("/logout", d.logout)
	d.action("/queues/{queue}/{action}", d.queueAction)
	d.action("/jobs/{id}/{action}", d.jobAction)
	d.action("/dead/bulk", d.bulk)
	d.action("/schedules/{name}/{action}", d.scheduleAction)
	d.action("/tenants/{queue}/{tenant}/{action}", d.tenantAction)
	d.action("/runs/{id}/cancel", d.runCancel)
	d.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
}

// queueRow is a queue with its depth.
type queueRow struct {
	admin.Queue
	Depth int
	// Waiting is how long the pending job next in fetch order has been
	// ready; in a queue without priorities that is the oldest one.
	Waiting string
}

func (q *request) queueRows() ([]queueRow, error) {
	var ql admin.QueueList
	if err := q.api("GET", "/api/v1/queues", nil, &ql); err != nil {
		return nil, err
	}
	rows := make([]queueRow, 0, len(ql.Queues))
	for _, x := range ql.Queues {
		rows = append(rows, queueRow{Queue: *x, Depth: x.Counts["pending"] + x.Counts["scheduled"]})
	}
	return rows, nil
}

// waiting fills row's Waiting from the first pending job the API lists
// (pending jobs are listed in fetch order).
func (q *request) waiting(row *queueRow) error {
	if row.Counts["pending"] == 0 {
		return nil
	}
	var page admin.JobPage
	v := url.Values{"queue": {row.Name}, "state": {"pending"}, "limit": {"1"}}
	if err := q.api("GET", "/api/v1/jobs?"+v.Encode(), nil, &page); err != nil {
		return err
	}
	if len(page.Jobs) == 0 {
		return nil
	}
	j := page.Jobs[0]
	since := j.CreatedAt
	if j.RunAt.After(since) {
		since = j.RunAt
	}
	row.Waiting = max(q.d.cfg.Now().Sub(since), 0).Round(time.Second).String()
	return nil
}

// forbidden reports whether err is the API's 403: a page shows a note
// instead of a part a tenant-scoped token may not read.
func forbidden(err error) bool { return apiStatus(err) == http.StatusForbidden }

type overviewData struct {
	Queues    []queueRow
	Charts    []*chart
	Workers   []map[string]any
	CrossOnly string
}

func (d *Dashboard) overview(q *request) error {
	var out overviewData
	var err error
	if out.Queues, err = q.queueRows(); err != nil {
		return err
	}
	for i := range out.Queues {
		if err := q.waiting(&out.Queues[i]); err != nil {
			return err
		}
	}
	var series struct {
		Series []struct {
			Minutes []struct {
				Start     time.Time `json:"start"`
				Completed int64     `json:"completed"`
				Failed    int64     `json:"failed"`
				Dead      int64     `json:"dead"`
				Latency   struct {
					P50Ms int64 `json:"p50Ms"`
					P95Ms int64 `json:"p95Ms"`
				} `json:"latency"`
			} `json:"minutes"`
		} `json:"series"`
	}
	err = q.api("GET", "/api/v1/series", nil, &series)
	switch {
	case forbidden(err):
		out.CrossOnly = "Charts and workers count every tenant's jobs: a tenant-scoped login does not see them."
	case err != nil:
		return err
	default:
		now := q.d.cfg.Now().UTC().Truncate(time.Minute)
		done, retried, dead := make([]float64, 60), make([]float64, 60), make([]float64, 60)
		p50, p95 := make([]float64, 60), make([]float64, 60)
		for _, s := range series.Series {
			for _, m := range s.Minutes {
				i := 59 - int(now.Sub(m.Start.UTC().Truncate(time.Minute))/time.Minute)
				if i < 0 || i >= 60 {
					continue
				}
				// Failed counts every failed attempt, the ones after which
				// the job is dead included.
				done[i] += float64(m.Completed)
				retried[i] += float64(m.Failed - m.Dead)
				dead[i] += float64(m.Dead)
				p50[i] = max(p50[i], float64(m.Latency.P50Ms))
				p95[i] = max(p95[i], float64(m.Latency.P95Ms))
			}
		}
		out.Charts = []*chart{
			barChart("Completed per minute, last hour", done, "ok"),
			barChart("Failed attempts retried per minute, last hour", retried, "warn"),
			barChart("Jobs dead per minute, last hour", dead, "bad"),
			barChart("Processing time p50 (ms) of the slowest queue per minute, last hour", p50, "info"),
			barChart("Processing time p95 (ms) of the slowest queue per minute, last hour", p95, "info"),
		}
		var wl struct {
			Workers []map[string]any `json:"workers"`
		}
		if err := q.api("GET", "/api/v1/workers", nil, &wl); err != nil {
			return err
		}
		out.Workers = wl.Workers
	}
	return q.render("overview", "Overview", true, out)
}

func (d *Dashboard) queues(q *request) error {
	rows, err := q.queueRows()
	if err != nil {
		return err
	}
	return q.render("queues", "Queues", true, rows)
}

func (d *Dashboard) queueAction(q *request) error {
	name, action := q.r.PathValue("queue"), q.r.PathValue("action")
	path := "/api/v1/queues/" + url.PathEscape(name) + "/"
	switch action {
	case "pause", "resume":
		if err := q.api("POST", path+action, nil, nil); err != nil {
			return err
		}
	case "concurrency":
		n, err := strconv.Atoi(q.r.PostFormValue("concurrency"))
		if err != nil {
			return &admin.Error{Status: http.StatusBadRequest, Code: admin.CodeBadRequest, Field: "concurrency",
				Message: "concurrency must be a whole number, not " + strconv.Quote(q.r.PostFormValue("concurrency"))}
		}
		if err := q.api("PUT", path+"concurrency", admin.QueueSettings{Concurrency: n}, nil); err != nil {
			return err
		}
	default:
		return notFound("no queue action " + strconv.Quote(action))
	}
	return q.back("/queues", "Queue "+name+": "+action+" done.")
}

func notFound(msg string) error {
	return &admin.Error{Status: http.StatusNotFound, Code: admin.CodeNotFound, Message: msg}
}

// jobFilter reads the filter fields of a jobs form.
func jobFilter(v url.Values) url.Values {
	f := url.Values{}
	for _, k := range []string{"queue", "state", "type", "tenant", "from", "to", "cursor"} {
		if s := v.Get(k); s != "" {
			f.Set(k, s)
		}
	}
	// The form's datetime-local fields have no zone; the script fills the
	// hidden RFC 3339 ones, and without script they are read as UTC.
	for _, k := range []string{"from", "to"} {
		if s := f.Get(k); s != "" {
			if t, err := time.Parse("2006-01-02T15:04", s); err == nil {
				f.Set(k, t.UTC().Format(time.RFC3339))
			}
		}
	}
	return f
}

type jobsData struct {
	Filter url.Values
	States []string
	Jobs   []*admin.Job
	Next   string
}

var states = []string{"scheduled", "pending", "active", "completed", "dead", "cancelled", "expired"}

func (q *request) listJobs(f url.Values) (*jobsData, error) {
	api := url.Values{}
	for k, v := range f {
		api[k] = v
	}
	api.Set("limit", "50")
	var page admin.JobPage
	if err := q.api("GET", "/api/v1/jobs?"+api.Encode(), nil, &page); err != nil {
		return nil, err
	}
	return &jobsData{Filter: f, States: states, Jobs: page.Jobs, Next: page.NextCursor}, nil
}

func (d *Dashboard) jobs(q *request) error {
	data, err := q.listJobs(jobFilter(q.r.URL.Query()))
	if err != nil {
		return err
	}
	return q.render("jobs", "Jobs", true, data)
}

type jobData struct {
	Job         *admin.Job
	ShowPayload bool
	Payload     string
	Result      string
	Progress    string
}

func pretty(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func (d *Dashboard) job(q *request) error {
	var j admin.Job
	path := "/api/v1/jobs/" + url.PathEscape(q.r.PathValue("id"))
	if qu := q.r.URL.Query().Get("queue"); qu != "" {
		path += "?queue=" + url.QueryEscape(qu)
	}
	if err := q.api("GET", path, nil, &j); err != nil {
		return err
	}
	// The payload may hold a customer's data: the API leaves it out for
	// roles that may not see it (payloadRedacted), and the page shows it
	// to the others only when asked for.
	out := jobData{Job: &j, Result: pretty(j.Result), Progress: pretty(j.Progress)}
	if !j.PayloadRedacted && q.r.URL.Query().Get("payload") == "1" {
		out.ShowPayload, out.Payload = true, pretty(j.Data)
	}
	return q.render("job", "Job "+j.ID, true, out)
}

func (d *Dashboard) jobAction(q *request) error {
	id, action := q.r.PathValue("id"), q.r.PathValue("action")
	path := "/api/v1/jobs/" + url.PathEscape(id)
	method := "POST"
	switch action {
	case "retry", "cancel":
		path += "/" + action
	case "delete":
		method = "DELETE"
	default:
		return notFound("no job action " + strconv.Quote(action))
	}
	if qu := q.r.PostFormValue("queue"); qu != "" {
		path += "?queue=" + url.QueryEscape(qu)
	}
	if err := q.api(method, path, nil, nil); err != nil {
		return err
	}
	if action == "delete" {
		return q.back("/jobs", "Job "+id+" deleted.")
	}
	return q.back("/jobs/"+url.PathEscape(id)+"?queue="+url.QueryEscape(q.r.PostFormValue("queue")), "Job "+id+": "+action+" done.")
}

type deadData struct {
	List *jobsData
	// Confirm is the dry run's answer, before the action is done.
	Confirm *admin.BulkResponse
	Action  string
	Done    *admin.BulkResponse
}

func (d *Dashboard) dead(q *request) error {
	f := jobFilter(q.r.URL.Query())
	f.Set("state", "dead")
	data, err := q.listJobs(f)
	if err != nil {
		return err
	}
	data.States = nil // the page lists dead jobs only
	return q.render("dead", "Dead jobs", false, deadData{List: data})
}

// bulk retries or deletes the dead jobs of a filter in two steps: the
// first post counts them (a dry run) and shows the count with a button
// that does it; only that second post acts.
func (d *Dashboard) bulk(q *request) error {
	f := jobFilter(q.r.PostForm)
	f.Del("cursor")
	f.Set("state", "dead")
	action := q.r.PostFormValue("action")
	if action != "retry" && action != "delete" {
		return &admin.Error{Status: http.StatusBadRequest, Code: admin.CodeBadRequest, Field: "action", Message: "action must be retry or delete"}
	}
	req := admin.BulkRequest{Action: action, DryRun: q.r.PostFormValue("confirm") != "yes",
		Filter: admin.JobFilter{Queue: f.Get("queue"), State: "dead", Type: f.Get("type"), Tenant: f.Get("tenant")}}
	var err error
	if req.Filter.From, err = optTime(f.Get("from"), "from"); err != nil {
		return err
	}
	if req.Filter.To, err = optTime(f.Get("to"), "to"); err != nil {
		return err
	}
	var resp admin.BulkResponse
	if err := q.api("POST", "/api/v1/jobs/bulk", req, &resp); err != nil {
		return err
	}
	data, err := q.listJobs(f)
	if err != nil {
		return err
	}
	data.States = nil
	out := deadData{List: data, Action: action}
	if req.DryRun {
		out.Confirm = &resp
	} else {
		out.Done = &resp
	}
	return q.render("dead", "Dead jobs", false, out)
}

func optTime(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &admin.Error{Status: http.StatusBadRequest, Code: admin.CodeBadRequest, Field: field,
			Message: field + " must be a time such as 2026-01-02T15:04, not " + strconv.Quote(s)}
	}
	return t, nil
}

func (d *Dashboard) schedules(q *request) error {
	var out struct {
		Schedules []map[string]any `json:"schedules"`
	}
	if err := q.api("GET", "/api/v1/schedules?next=3", nil, &out); err != nil {
		return err
	}
	return q.render("schedules", "Schedules", false, out.Schedules)
}

func (d *Dashboard) scheduleAction(q *request) error {
	name, action := q.r.PathValue("name"), q.r.PathValue("action")
	switch action {
	case "pause", "resume", "trigger":
	default:
		return notFound("no schedule action " + strconv.Quote(action))
	}
	var out struct {
		ID    string `json:"id"`
		Queue string `json:"queue"`
	}
	if err := q.api("POST", "/api/v1/schedules/"+url.PathEscape(name)+"/"+action, nil, &out); err != nil {
		return err
	}
	if action == "trigger" {
		return q.back("/jobs/"+url.PathEscape(out.ID)+"?queue="+url.QueryEscape(out.Queue), "Schedule "+name+" triggered: job "+out.ID+".")
	}
	return q.back("/schedules", "Schedule "+name+": "+action+" done.")
}

type runsData struct {
	Workflow string
	// Workflows are the registered workflows (and Config.Workflows).
	Workflows []string
	Filter    url.Values
	Runs      []map[string]any
	Next      string
}

// workflowNames returns the registered workflows as the API lists them,
// with Config.Workflows, sorted and each once.
func (q *request) workflowNames() ([]string, error) {
	var list struct {
		Workflows []struct {
			Name string `json:"name"`
		} `json:"workflows"`
	}
	err := q.api("GET", "/api/v1/workflows", nil, &list)
	if err != nil && apiStatus(err) != http.StatusNotFound {
		return nil, err
	}
	names := slices.Clone(q.d.cfg.Workflows)
	for _, w := range list.Workflows {
		names = append(names, w.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (d *Dashboard) runs(q *request) error {
	v := q.r.URL.Query()
	names, err := q.workflowNames()
	if err != nil {
		return err
	}
	out := runsData{Workflow: v.Get("workflow"), Workflows: names, Filter: url.Values{}}
	if out.Workflow == "" && len(out.Workflows) > 0 {
		out.Workflow = out.Workflows[0]
	}
	for _, k := range []string{"state", "tenant"} {
		if s := v.Get(k); s != "" {
			out.Filter.Set(k, s)
		}
	}
	if out.Workflow != "" {
		p := url.Values{"workflow": {out.Workflow}, "limit": {"50"}}
		for _, k := range []string{"state", "tenant", "cursor"} {
			if s := v.Get(k); s != "" {
				p.Set(k, s)
			}
		}
		var list struct {
			Runs []map[string]any `json:"runs"`
			Next string           `json:"nextCursor"`
		}
		if err := q.api("GET", "/api/v1/workflows/runs?"+p.Encode(), nil, &list); err != nil {
			return err
		}
		out.Runs, out.Next = list.Runs, list.Next
	}
	return q.render("runs", "Workflow runs", true, out)
}

// Run is a workflow run as the run page reads it.
type Run struct {
	ID         string    `json:"id"`
	Workflow   string    `json:"workflow"`
	Queue      string    `json:"queue"`
	State      string    `json:"state"`
	TenantID   string    `json:"tenantId"`
	Error      string    `json:"error"`
	FailedStep string    `json:"failedStep"`
	CreatedAt  time.Time `json:"createdAt"`
	Steps      []Step    `json:"steps"`
}

// Step is one step of a Run.
type Step struct {
	Name              string   `json:"name"`
	DependsOn         []string `json:"dependsOn"`
	State             string   `json:"state"`
	Attempts          int      `json:"attempts"`
	Error             string   `json:"error"`
	CompensationState string   `json:"compensationState"`
}

type runData struct {
	Run   *Run
	Graph *graph
}

func (d *Dashboard) run(q *request) error {
	var r Run
	if err := q.api("GET", "/api/v1/workflows/runs/"+url.PathEscape(q.r.PathValue("id")), nil, &r); err != nil {
		return err
	}
	return q.render("run", "Run "+r.ID, true, runData{Run: &r, Graph: stepGraph(&r)})
}

func (d *Dashboard) runCancel(q *request) error {
	id := q.r.PathValue("id")
	if err := q.api("POST", "/api/v1/workflows/runs/"+url.PathEscape(id)+"/cancel", nil, nil); err != nil {
		return err
	}
	return q.back("/runs/"+url.PathEscape(id), "Run "+id+" cancelled.")
}

func (d *Dashboard) workers(q *request) error {
	var wl struct {
		Workers []map[string]any `json:"workers"`
	}
	err := q.api("GET", "/api/v1/workers", nil, &wl)
	if err != nil && !forbidden(err) {
		return err
	}
	return q.render("workers", "Workers", true, struct {
		Workers   []map[string]any
		Forbidden bool
	}{wl.Workers, err != nil})
}

type tenantRow struct {
	Tenant map[string]any
	// Queues are the tenant's share of each queue that holds its jobs
	// or pauses it.
	Queues []tenantQueue
}

// tenantQueue is one tenant's share of a queue as the API tells it.
type tenantQueue struct {
	admin.QueueTenant
	// Depth counts pending and scheduled jobs; Waiting is how long the
	// oldest pending one has been due.
	Depth   int
	Waiting string
}

func (d *Dashboard) tenants(q *request) error {
	var tl struct {
		Tenants []map[string]any `json:"tenants"`
	}
	if err := q.api("GET", "/api/v1/tenants?limit=100", nil, &tl); err != nil {
		return err
	}
	queues, err := q.queueRows()
	if err != nil {
		return err
	}
	out := make([]tenantRow, 0, len(tl.Tenants))
	for _, t := range tl.Tenants {
		row := tenantRow{Tenant: t}
		for _, qu := range queues {
			var qt tenantQueue
			path := "/api/v1/queues/" + url.PathEscape(qu.Name) + "/tenants/" + url.PathEscape(str(t["id"]))
			if err := q.api("GET", path, nil, &qt.QueueTenant); err != nil {
				return err
			}
			total := 0
			for _, n := range qt.Counts {
				total += n
			}
			if total == 0 && !qt.TenantPaused {
				continue
			}
			qt.Depth = qt.Counts["pending"] + qt.Counts["scheduled"]
			if qt.OldestPendingAt != nil {
				qt.Waiting = max(q.d.cfg.Now().Sub(*qt.OldestPendingAt), 0).Round(time.Second).String()
			}
			row.Queues = append(row.Queues, qt)
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return str(out[i].Tenant["id"]) < str(out[j].Tenant["id"]) })
	return q.render("tenants", "Tenants", true, out)
}

// tenantAction pauses or resumes one tenant's jobs in a queue.
func (d *Dashboard) tenantAction(q *request) error {
	queue, tenant, action := q.r.PathValue("queue"), q.r.PathValue("tenant"), q.r.PathValue("action")
	if action != "pause" && action != "resume" {
		return notFound("no tenant action " + strconv.Quote(action))
	}
	path := "/api/v1/queues/" + url.PathEscape(queue) + "/tenants/" + url.PathEscape(tenant) + "/" + action
	if err := q.api("POST", path, nil, nil); err != nil {
		return err
	}
	return q.back("/tenants", "Tenant "+tenant+" in queue "+queue+": "+action+" done.")
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

type auditData struct {
	Filter  url.Values
	Entries []map[string]any
	Next    string
}

// audit lists the audit trail, newest first, filtered by tenant, actor,
// action and time; a tenant-scoped token gets its tenant's entries.
func (d *Dashboard) audit(q *request) error {
	in := q.r.URL.Query()
	f := url.Values{}
	for _, k := range []string{"tenant", "actor", "action", "since", "until"} {
		if v := in.Get(k); v != "" {
			f.Set(k, v)
		}
	}
	api := url.Values{"limit": {"100"}}
	for k, v := range f {
		api[k] = v
	}
	if c := in.Get("cursor"); c != "" {
		api.Set("cursor", c)
	}
	var page struct {
		Entries []map[string]any `json:"entries"`
		Next    string           `json:"nextCursor"`
	}
	if err := q.api("GET", "/api/v1/audit?"+api.Encode(), nil, &page); err != nil {
		return err
	}
	return q.render("audit", "Audit trail", true, auditData{Filter: f, Entries: page.Entries, Next: page.Next})
}
