package admin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// schedAPI is a test bundle: the API on a real listener over a real broker
// (apitest, which checks every request and answer against the OpenAPI
// document), with the engines it serves.
type schedAPI struct {
	t      *testing.T
	srv    *apitest.Server
	b      broker.Broker
	client *worker.Client
	cron   *schedule.Cron
	once   *schedule.OneTime
	wf     *workflow.Engine
}

// newSchedAPI serves the API over b; engine, when not nil, is the
// workflow engine it serves, and cb the callbacks.
func newSchedAPI(t *testing.T, b broker.Broker, engine *workflow.Engine, cb *httpproc.Callbacks) *schedAPI {
	t.Helper()
	cfg := withSchedulers(t, admin.Config{Broker: b, Workflows: engine, Callbacks: cb, Logger: quietLog})
	return serveParts(t, cfg)
}

// withSchedulers returns cfg with a cron and a one-time scheduler over
// cfg.Broker.
func withSchedulers(t *testing.T, cfg admin.Config) admin.Config {
	t.Helper()
	var err error
	if cfg.Cron, err = schedule.New(cfg.Broker, schedule.Config{Logger: quietLog}); err != nil {
		t.Fatal(err)
	}
	if cfg.OneTime, err = schedule.NewOneTime(cfg.Broker); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serveParts serves the API made from cfg.
func serveParts(t *testing.T, cfg admin.Config) *schedAPI {
	t.Helper()
	srv := apitest.Start(t, cfg)
	c := srv.Config
	return &schedAPI{t: t, srv: srv, b: c.Broker, client: c.Client, cron: c.Cron, once: c.OneTime, wf: c.Workflows}
}

// do sends one request with token (none if "") and a body, validated on
// both sides against the OpenAPI document.
func (a *schedAPI) do(method, path, token string, body any, header ...string) *apitest.Response {
	a.t.Helper()
	return a.srv.Do(a.t, method, path, token, body, header...)
}

// jsonOf decodes an answer's body into a generic value.
func jsonOf(t *testing.T, r *apitest.Response) map[string]any {
	t.Helper()
	var v map[string]any
	r.JSON(t, &v)
	return v
}

// want fails the test unless r has status; it returns r.
func want(t *testing.T, what string, r *apitest.Response, status int) *apitest.Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	return r
}

// wantErr fails the test unless r is an error with status, code and field.
func wantErr(t *testing.T, what string, r *apitest.Response, status int, code, field string) {
	t.Helper()
	want(t, what, r, status)
	if e := r.Error(t); e.Code != code || e.Field != field {
		t.Fatalf("%s: error code %q field %q, want %q and %q; body %s", what, e.Code, e.Field, code, field, r.Body)
	}
}

// scheduleBody is a create body for a daily 09:00 schedule in Berlin.
func scheduleBody(name, tenant string) map[string]any {
	job := map[string]any{"queue": "reports", "type": "report.daily", "data": map[string]any{"kind": name}}
	if tenant != "" {
		job["tenantId"] = tenant
	}
	return map[string]any{"name": name, "cron": "0 9 * * *", "timeZone": "Europe/Berlin", "job": job}
}

func TestScheduleLifecycle(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := newSchedAPI(t, b, nil, nil)
		r := want(t, "create", a.do("POST", "/api/v1/schedules", "admin", scheduleBody("daily-reports", "tenant-b")), http.StatusCreated)
		if loc := r.Header.Get("Location"); loc != "/api/v1/schedules/daily-reports" {
			t.Errorf("Location %q", loc)
		}
		got := jsonOf(t, r)
		if got["managedBy"] != "api" || got["paused"] != false || got["timeZone"] != "Europe/Berlin" {
			t.Errorf("created schedule %s", r.Body)
		}

		// Next fire times: 09:00 in Berlin, the same instant in UTC.
		l := jsonOf(t, want(t, "list", a.do("GET", "/api/v1/schedules?next=3", "viewer", nil), http.StatusOK))
		scheds := l["schedules"].([]any)
		if len(scheds) != 1 {
			t.Fatalf("list: %v", l)
		}
		next := scheds[0].(map[string]any)["next"].([]any)
		if len(next) != 3 {
			t.Fatalf("next: %v, want 3 fire times", next)
		}
		berlin, _ := time.LoadLocation("Europe/Berlin")
		for _, n := range next {
			f := n.(map[string]any)
			local, err1 := time.Parse(time.RFC3339, f["local"].(string))
			utc, err2 := time.Parse(time.RFC3339, f["utc"].(string))
			if err1 != nil || err2 != nil || !local.Equal(utc) || !strings.HasSuffix(f["utc"].(string), "Z") {
				t.Fatalf("fire time %v: local and utc are not one instant in RFC 3339", f)
			}
			if lt := local.In(berlin); lt.Hour() != 9 || lt.Minute() != 0 || local.Format("-07:00") != lt.Format("-07:00") {
				t.Errorf("fire time %v is not 09:00 Berlin time with Berlin's offset", f)
			}
		}

		// Update: the new spec shows; the name cannot change.
		upd := scheduleBody("daily-reports", "tenant-b")
		upd["cron"] = "30 7 * * 1-5"
		r = want(t, "update", a.do("PUT", "/api/v1/schedules/daily-reports", "admin", upd), http.StatusOK)
		if got := jsonOf(t, r); got["cron"] != "30 7 * * 1-5" || got["version"] != float64(2) {
			t.Errorf("updated schedule %s", r.Body)
		}
		wantErr(t, "rename", a.do("PUT", "/api/v1/schedules/daily-reports", "admin", scheduleBody("other", "")), http.StatusBadRequest, admin.CodeBadRequest, "name")

		// Pause, resume, trigger.
		r = want(t, "pause", a.do("POST", "/api/v1/schedules/daily-reports/pause", "operator", nil), http.StatusOK)
		if jsonOf(t, r)["paused"] != true {
			t.Errorf("pause answered %s", r.Body)
		}
		if in, err := a.cron.Get(context.Background(), "daily-reports"); err != nil || !in.Paused {
			t.Errorf("stored schedule after pause: %+v, %v", in, err)
		}
		r = want(t, "resume", a.do("POST", "/api/v1/schedules/daily-reports/resume", "operator", nil), http.StatusOK)
		if jsonOf(t, r)["paused"] != false {
			t.Errorf("resume answered %s", r.Body)
		}
		r = want(t, "trigger", a.do("POST", "/api/v1/schedules/daily-reports/trigger", "operator", nil), http.StatusCreated)
		id, _ := jsonOf(t, r)["id"].(string)
		j, err := a.client.Get(context.Background(), "reports", id)
		if err != nil || j.Type != "report.daily" || j.TenantID != "tenant-b" || j.State != broker.StatePending {
			t.Fatalf("triggered job %q: %+v, %v; want a pending report.daily of tenant-b", id, j, err)
		}

		// Errors.
		wantErr(t, "duplicate", a.do("POST", "/api/v1/schedules", "admin", scheduleBody("daily-reports", "")), http.StatusConflict, admin.CodeConflict, "name")
		bad := scheduleBody("bad", "")
		bad["cron"] = "61 * * * *"
		wantErr(t, "bad cron", a.do("POST", "/api/v1/schedules", "admin", bad), http.StatusUnprocessableEntity, admin.CodeInvalid, "cron")
		bad["cron"], bad["timeZone"] = "@daily", "Mars/Olympus"
		wantErr(t, "bad zone", a.do("POST", "/api/v1/schedules", "admin", bad), http.StatusUnprocessableEntity, admin.CodeInvalid, "timeZone")
		bad["timeZone"], bad["job"] = "", map[string]any{"queue": "reports", "type": "t", "priority": 1001}
		wantErr(t, "bad priority", a.do("POST", "/api/v1/schedules", "admin", bad), http.StatusUnprocessableEntity, admin.CodeInvalid, "job.priority")
		wantErr(t, "unknown field", a.do("POST", "/api/v1/schedules", "admin", `{"name":"x","cron":"@daily","job":{"queue":"q","type":"t"},"spec":"x"}`),
			http.StatusBadRequest, admin.CodeBadRequest, "spec")
		wantErr(t, "no job", a.do("POST", "/api/v1/schedules", "admin", `{"name":"x","cron":"@daily"}`), http.StatusBadRequest, admin.CodeBadRequest, "job")
		wantErr(t, "viewer creates", a.do("POST", "/api/v1/schedules", "viewer", scheduleBody("v", "")), http.StatusForbidden, admin.CodeForbidden, "")
		wantErr(t, "operator deletes", a.do("DELETE", "/api/v1/schedules/daily-reports", "operator", nil), http.StatusForbidden, admin.CodeForbidden, "")
		wantErr(t, "bad next", a.do("GET", "/api/v1/schedules?next=-1", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "next")

		want(t, "delete", a.do("DELETE", "/api/v1/schedules/daily-reports", "admin", nil), http.StatusNoContent)
		wantErr(t, "get deleted", a.do("GET", "/api/v1/schedules/daily-reports", "viewer", nil), http.StatusNotFound, admin.CodeNotFound, "name")
		wantErr(t, "trigger deleted", a.do("POST", "/api/v1/schedules/daily-reports/trigger", "operator", nil), http.StatusNotFound, admin.CodeNotFound, "name")
		if _, err := a.cron.Get(context.Background(), "daily-reports"); !errors.Is(err, broker.ErrScheduleNotFound) {
			t.Errorf("stored schedule after delete: %v", err)
		}
	})
}

// TestScheduleTenantScope: a token scoped to tenant-a sees and touches only
// tenant-a's schedules; tenant-b's and the seed's "all" schedule are 404 to
// it, whatever it tries; a cross-tenant token sees all three.
func TestScheduleTenantScope(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		a := newSchedAPI(t, b, nil, nil)
		for _, s := range [][2]string{{"a-report", "tenant-a"}, {"b-report", "tenant-b"}, {"daily-reports", "all"}} {
			want(t, "create "+s[0], a.do("POST", "/api/v1/schedules", "admin", scheduleBody(s[0], s[1])), http.StatusCreated)
		}
		names := func(token string) []string {
			l := jsonOf(t, want(t, "list", a.do("GET", "/api/v1/schedules", token, nil), http.StatusOK))
			var out []string
			for _, s := range l["schedules"].([]any) {
				out = append(out, s.(map[string]any)["name"].(string))
			}
			return out
		}
		if got := strings.Join(names("viewer-a"), ","); got != "a-report" {
			t.Errorf("tenant-a sees %q, want only a-report", got)
		}
		if got := strings.Join(names("viewer"), ","); got != "a-report,b-report,daily-reports" {
			t.Errorf("a cross-tenant token sees %q, want all three", got)
		}
		for _, name := range []string{"b-report", "daily-reports"} {
			for _, c := range []struct{ method, path, token string }{
				{"GET", "/api/v1/schedules/" + name, "viewer-a"},
				{"PUT", "/api/v1/schedules/" + name, "admin-a"},
				{"DELETE", "/api/v1/schedules/" + name, "admin-a"},
				{"POST", "/api/v1/schedules/" + name + "/pause", "operator-a"},
				{"POST", "/api/v1/schedules/" + name + "/resume", "operator-a"},
				{"POST", "/api/v1/schedules/" + name + "/trigger", "operator-a"},
			} {
				var body any
				if c.method == "PUT" {
					body = scheduleBody(name, "")
				}
				wantErr(t, c.method+" "+c.path+" as tenant-a", a.do(c.method, c.path, c.token, body), http.StatusNotFound, admin.CodeNotFound, "name")
			}
			in, err := a.cron.Get(ctx, name)
			if err != nil || in.Paused || in.Version != 1 {
				t.Errorf("%s after tenant-a's attempts: %+v, %v; want it unchanged", name, in, err)
			}
		}
		if l, err := a.client.List(ctx, worker.ListParams{Queue: "reports", State: broker.StatePending}); err != nil || len(l.Jobs) != 0 {
			t.Errorf("jobs after tenant-a's triggers of others' schedules: %v, %v", l, err)
		}
		// Creating: the tenant comes from the token; another is refused.
		wantErr(t, "create for tenant-b as tenant-a", a.do("POST", "/api/v1/schedules", "admin-a", scheduleBody("sneaky", "tenant-b")),
			http.StatusForbidden, admin.CodeForbidden, "job.tenantId")
		wantErr(t, "create for all as tenant-a", a.do("POST", "/api/v1/schedules", "admin-a", scheduleBody("sneaky", "all")),
			http.StatusForbidden, admin.CodeForbidden, "job.tenantId")
		r := want(t, "create as tenant-a", a.do("POST", "/api/v1/schedules", "admin-a", scheduleBody("a-second", "")), http.StatusCreated)
		if tenant := jsonOf(t, r)["job"].(map[string]any)["tenantId"]; tenant != "tenant-a" {
			t.Errorf("a schedule created by tenant-a's token has tenant %v", tenant)
		}
		// tenant-a's own schedule: every action works.
		want(t, "trigger own", a.do("POST", "/api/v1/schedules/a-report/trigger", "operator-a", nil), http.StatusCreated)
		want(t, "pause own", a.do("POST", "/api/v1/schedules/a-report/pause", "operator-a", nil), http.StatusOK)
		want(t, "delete own", a.do("DELETE", "/api/v1/schedules/a-report", "admin-a", nil), http.StatusNoContent)
		// ... and the cross-tenant admin's on tenant-b's (so the 404s above can fail).
		want(t, "admin pauses b's", a.do("POST", "/api/v1/schedules/b-report/pause", "operator", nil), http.StatusOK)
		want(t, "admin deletes b's", a.do("DELETE", "/api/v1/schedules/b-report", "admin", nil), http.StatusNoContent)
	})
}

// TestOneTimeSchedules: create, list (scoped to the token's tenant by the
// store), get and cancel a job due at a given time.
func TestOneTimeSchedules(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := newSchedAPI(t, b, nil, nil)
		at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		body := func(name, tenant string) map[string]any {
			job := map[string]any{"queue": "billing", "type": "invoice.send"}
			if tenant != "" {
				job["tenantId"] = tenant
			}
			return map[string]any{"name": name, "runAt": at.Format(time.RFC3339), "job": job}
		}
		r := want(t, "create", a.do("POST", "/api/v1/one-time-schedules", "admin-a", body("remind-1", "")), http.StatusCreated)
		got := jsonOf(t, r)
		if got["state"] != "scheduled" || got["id"] != "once:remind-1" || got["job"].(map[string]any)["tenantId"] != "tenant-a" {
			t.Errorf("created %s", r.Body)
		}
		if ra, _ := time.Parse(time.RFC3339, got["runAt"].(string)); !ra.Equal(at) {
			t.Errorf("runAt %v, want %v", got["runAt"], at)
		}
		want(t, "create b's", a.do("POST", "/api/v1/one-time-schedules", "admin", body("remind-b", "tenant-b")), http.StatusCreated)
		wantErr(t, "same name again", a.do("POST", "/api/v1/one-time-schedules", "admin", body("remind-1", "tenant-b")), http.StatusConflict, admin.CodeConflict, "name")
		wantErr(t, "for tenant-b as tenant-a", a.do("POST", "/api/v1/one-time-schedules", "admin-a", body("x", "tenant-b")), http.StatusForbidden, admin.CodeForbidden, "job.tenantId")
		wantErr(t, "no runAt", a.do("POST", "/api/v1/one-time-schedules", "admin", `{"name":"x","job":{"queue":"billing","type":"t"}}`), http.StatusBadRequest, admin.CodeBadRequest, "runAt")

		count := func(token, query string) int {
			l := jsonOf(t, want(t, "list "+query, a.do("GET", "/api/v1/one-time-schedules?"+query, token, nil), http.StatusOK))
			return len(l["schedules"].([]any))
		}
		if n := count("viewer-a", "queue=billing"); n != 1 {
			t.Errorf("tenant-a lists %d one-time schedules, want 1", n)
		}
		if n := count("viewer", "queue=billing"); n != 2 {
			t.Errorf("a cross-tenant token lists %d, want 2", n)
		}
		if n := count("viewer", "queue=billing&tenant=tenant-b"); n != 1 {
			t.Errorf("tenant=tenant-b lists %d, want 1", n)
		}
		wantErr(t, "filter bypass", a.do("GET", "/api/v1/one-time-schedules?queue=billing&tenant=tenant-b", "viewer-a", nil), http.StatusForbidden, admin.CodeForbidden, "tenant")
		wantErr(t, "no queue", a.do("GET", "/api/v1/one-time-schedules", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "queue")

		wantErr(t, "get b's as tenant-a", a.do("GET", "/api/v1/one-time-schedules/billing/remind-b", "viewer-a", nil), http.StatusNotFound, admin.CodeNotFound, "")
		wantErr(t, "cancel b's as tenant-a", a.do("DELETE", "/api/v1/one-time-schedules/billing/remind-b", "operator-a", nil), http.StatusNotFound, admin.CodeNotFound, "")
		want(t, "get own", a.do("GET", "/api/v1/one-time-schedules/billing/remind-1", "viewer-a", nil), http.StatusOK)
		r = want(t, "cancel own", a.do("DELETE", "/api/v1/one-time-schedules/billing/remind-1", "operator-a", nil), http.StatusOK)
		if jsonOf(t, r)["state"] != "cancelled" {
			t.Errorf("cancel answered %s", r.Body)
		}
		j, err := a.once.Get(context.Background(), "billing", "remind-b")
		if err != nil || j.State != broker.StateScheduled {
			t.Errorf("tenant-b's one-time job after tenant-a's cancel: %+v, %v", j, err)
		}
		wantErr(t, "cancel twice", a.do("DELETE", "/api/v1/one-time-schedules/billing/remind-1", "operator-a", nil), http.StatusConflict, admin.CodeConflict, "")
	})
}
