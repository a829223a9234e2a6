package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/workflow"
)

// apiBundle is a running service with the API and tokens of each role:
// cross-tenant ("admin") and scoped to tenants A and B ("admin-A").
type apiBundle struct {
	svc    *Service
	ledger accounting.Store
	base   string
	tok    map[string]string
}

// brokerEnvs are the environments that make the service use each broker.
func brokerEnvs(t *testing.T) map[string][]string {
	return map[string][]string{
		"sqlite": {"WORKER_DATA_DIR=" + t.TempDir()},
		"redis": {"REDIS_URL=" + redistest.URL(t), "QUEUE_PREFIX=" + redistest.Prefix(t),
			"WORKER_AUDIT_KEY=" + testAuditKey, "WORKER_DATA_DIR=" + t.TempDir(),
			"WORKER_ENCRYPTION_KEYS=" + testKeys},
	}
}

// eachBroker runs f against a started service on each broker, in
// parallel subtests.
func eachBroker(t *testing.T, f func(t *testing.T, a *apiBundle)) {
	for _, kind := range []string{"sqlite", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f(t, startAPI(t, brokerEnvs(t)[kind]))
		})
	}
}

func startAPI(t *testing.T, vars []string) *apiBundle {
	t.Helper()
	return startAPIFile(t, vars, "")
}

// startAPIFile is startAPI with a config file (none if empty).
func startAPIFile(t *testing.T, vars []string, file string) *apiBundle {
	t.Helper()
	ctx := context.Background()
	cfg, err := Load(LoadInput{File: file, LookupEnv: env(append(vars, "WORKER_HTTP_ADDR=127.0.0.1:0")...)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// isoFlow's one step holds until the test ends, so a run stays running
	// while the test reads, and cancels, it.
	release := make(chan struct{})
	hold := workflow.StepProcessorFunc(func(ctx context.Context, _ *workflow.StepInfo, _ workflow.Data) (workflow.Data, error) {
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	if err := svc.Workflows().RegisterStepProcessor("iso.hold", hold); err != nil {
		t.Fatal(err)
	}
	if err := svc.RegisterWorkflow(workflow.Workflow{Name: isoFlow, Steps: []workflow.Step{{Name: "hold", Processor: "iso.hold"}}}); err != nil {
		t.Fatal(err)
	}
	ledger, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc.SetLedger(ledger)
	if err := svc.Start(ctx); err != nil {
		_ = svc.Close()
		_ = ledger.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		_ = ledger.Close()
	})
	t.Cleanup(func() { close(release) }) // before the shutdown: cleanups run last first
	a := &apiBundle{svc: svc, ledger: ledger, base: "http://" + svc.Addr().String(), tok: map[string]string{}}
	for _, role := range []admin.Role{admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin} {
		for _, tenant := range []string{"", "A", "B"} {
			name := string(role)
			if tenant != "" {
				name += "-" + tenant
			}
			tok, _, err := svc.Tokens().Create(ctx, admin.TokenSpec{Name: name, Role: role, TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			a.tok[name] = tok
		}
	}
	return a
}

// call sends method path with a JSON body (none if empty) as the named
// token and returns the status and the decoded body.
func (a *apiBundle) call(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	return request(t, method, a.base+path, a.tok[token], body)
}

// request sends method url with the bearer token (none if empty) and a
// JSON body (none if empty), and returns the status and the decoded body.
func request(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m
}

// docRoles reads the role table of admin/doc.go: pattern → role.
func docRoles(t *testing.T) map[string]admin.Role {
	t.Helper()
	src, err := os.ReadFile("../admin/doc.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^//\t(GET|POST|PUT|PATCH|DELETE) +(/api/v1/\S*) +(viewer|operator|admin)$`)
	out := map[string]admin.Role{}
	for _, m := range row.FindAllStringSubmatch(string(src), -1) {
		out[m[1]+" "+m[2]] = admin.Role(m[3])
	}
	return out
}

// fillPath puts a value in each {param} of a route's path: none names
// anything that exists, so an allowed call fails later, in the handler,
// never with 401 or 403.
func fillPath(path string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllStringFunc(path, func(p string) string {
		switch p {
		case "{queue}":
			return "invoices"
		case "{id}":
			return "0000000000000000"
		}
		return "no-such-" + strings.Trim(p, "{}.")
	})
}

// TestAPIRoles: the role table in admin/doc.go is the routes' own, and
// each role against each route that changes something gets the
// documented allow (anything but 401 and 403) or deny (403).
func TestAPIRoles(t *testing.T) {
	eachBroker(t, func(t *testing.T, a *apiBundle) {
		documented := docRoles(t)
		routes := a.svc.API().Routes()
		for _, r := range routes {
			if want, ok := documented[r.Pattern]; !ok || want != r.Role {
				t.Errorf("route %s needs %s; admin/doc.go's table says %q", r.Pattern, r.Role, want)
			}
			delete(documented, r.Pattern)
		}
		for p := range documented {
			t.Errorf("admin/doc.go's table lists %s, which is not a route", p)
		}
		for _, r := range routes {
			method, path, _ := strings.Cut(r.Pattern, " ")
			if method == http.MethodGet {
				continue
			}
			for _, role := range []admin.Role{admin.RoleViewer, admin.RoleOperator, admin.RoleAdmin} {
				body := ""
				if method != http.MethodDelete {
					body = "{}"
				}
				status, resp := a.call(t, string(role), method, fillPath(path), body)
				allowed := role.Allows(r.Role)
				switch {
				case allowed && (status == 401 || status == 403):
					t.Errorf("%s as %s: %d %v, want it allowed (the route needs %s)", r.Pattern, role, status, resp, r.Role)
				case !allowed && status != 403:
					t.Errorf("%s as %s: %d %v, want 403 (the route needs %s)", r.Pattern, role, status, resp, r.Role)
				}
			}
		}
	})
}

// attempt is one thing tenant A's admin tries against tenant B, and the
// cross-tenant admin then does.
type attempt struct {
	name         string
	method, path string
	body         string
	// adminWant is the status the cross-tenant admin gets; 0 means any
	// 2xx.
	adminWant int
	// sees, for a listing, reports whether a response shows tenant B's
	// resource; A's token must never see it and the admin must.
	sees func(resp map[string]any) bool
}

// tokenID returns the id of the token named name.
func (a *apiBundle) tokenID(t *testing.T, name string) string {
	t.Helper()
	l, err := a.svc.Tokens().List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range l {
		if x.Name == name {
			return x.ID
		}
	}
	t.Fatalf("no token %s", name)
	return ""
}

// listHas reports whether the list under key holds an item whose field is
// value.
func listHas(key, field, value string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		items, _ := m[key].([]any)
		for _, it := range items {
			if o, ok := it.(map[string]any); ok && o[field] == value {
				return true
			}
		}
		return false
	}
}

// isoQueue is a queue no worker serves, so tenant B's jobs stay as the
// test leaves them.
const isoQueue = "isolation"

// bJob adds a job of tenant B to isoQueue, due in an hour; cancelled, it
// is finished (so it can be retried and deleted).
func (a *apiBundle) bJob(t *testing.T, cancelled bool) string {
	t.Helper()
	ctx := context.Background()
	j, err := a.svc.Client().Add(ctx, isoQueue, worker.JobSpec{Type: "report.generation", TenantID: "B", Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if cancelled {
		if _, err := a.svc.Client().Cancel(ctx, isoQueue, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	return j.ID
}

// jobAttempts are the attempts on tenant B's jobs and queues.
func jobAttempts(t *testing.T, a *apiBundle) []attempt {
	seen, get, retry, cancel, del := a.bJob(t, false), a.bJob(t, false), a.bJob(t, true), a.bJob(t, false), a.bJob(t, true)
	return []attempt{
		{name: "get B's job", method: "GET", path: "/api/v1/jobs/" + get},
		{name: "list jobs", method: "GET", path: "/api/v1/jobs?queue=" + isoQueue, sees: listHas("jobs", "id", seen)},
		{name: "list jobs with tenant=B", method: "GET", path: "/api/v1/jobs?queue=" + isoQueue + "&tenant=B", sees: listHas("jobs", "id", seen)},
		{name: "retry B's job", method: "POST", path: "/api/v1/jobs/" + retry + "/retry"},
		{name: "cancel B's job", method: "POST", path: "/api/v1/jobs/" + cancel + "/cancel"},
		{name: "delete B's job", method: "DELETE", path: "/api/v1/jobs/" + del},
		{name: "bulk over B's tenant", method: "POST", path: "/api/v1/jobs/bulk", body: `{"action":"retry","filter":{"queue":"` + isoQueue + `","tenant":"B"},"dryRun":true}`, sees: numberAbove("matched")},
		{name: "bulk over the queue", method: "POST", path: "/api/v1/jobs/bulk", body: `{"action":"delete","filter":{"queue":"` + isoQueue + `"},"dryRun":true}`, sees: numberAbove("matched")},
		{name: "enqueue for B", method: "POST", path: "/api/v1/queues/" + isoQueue + "/jobs", body: `{"type":"report.generation","tenantId":"B","delay":3600000}`},
		{name: "enqueue a batch for B", method: "POST", path: "/api/v1/queues/" + isoQueue + "/jobs/batch", body: `{"jobs":[{"type":"report.generation","delay":3600000},{"type":"report.generation","tenantId":"B","delay":3600000}]}`},
	}
}

// numberAbove reports whether the number under key is above zero.
func numberAbove(key string) func(map[string]any) bool {
	return func(m map[string]any) bool { n, _ := m[key].(float64); return n > 0 }
}

// bJobs describes tenant B's jobs in isoQueue: each id and state.
func (a *apiBundle) bJobs(t *testing.T) string {
	t.Helper()
	var out []string
	for _, st := range broker.States {
		l, err := a.svc.Client().List(context.Background(), worker.ListParams{Queue: isoQueue, State: st, TenantID: "B", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range l.Jobs {
			out = append(out, j.ID+":"+string(j.State))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// tenantAttempts are the attempts on tenant B's registry entry.
func tenantAttempts(t *testing.T, a *apiBundle) []attempt {
	if status, resp := a.call(t, "admin", "POST", "/api/v1/tenants", `{"id":"B","name":"Tenant B","timeZone":"Europe/Berlin","currency":"EUR"}`); status != 201 {
		t.Fatalf("create tenant B: %d %v", status, resp)
	}
	return []attempt{
		{name: "list tenants", method: "GET", path: "/api/v1/tenants", sees: listHas("tenants", "id", "B")},
		{name: "get tenant B", method: "GET", path: "/api/v1/tenants/B"},
		{name: "update tenant B", method: "PUT", path: "/api/v1/tenants/B", body: `{"id":"B","name":"Tenant B2","timeZone":"Europe/Paris","currency":"EUR"}`},
		{name: "create a tenant", method: "POST", path: "/api/v1/tenants", body: `{"id":"C","name":"Tenant C","timeZone":"UTC","currency":"USD"}`},
		{name: "purge tenant B", method: "POST", path: "/api/v1/tenants/B/purge", body: `{"dryRun":true}`},
		// Workers and series span every tenant: not for a tenant's token.
		{name: "list workers", method: "GET", path: "/api/v1/workers"},
		{name: "read series", method: "GET", path: "/api/v1/series?queue=invoices"},
	}
}

// scheduleAttempts are the attempts on tenant B's cron schedule.
func scheduleAttempts(t *testing.T, a *apiBundle) []attempt {
	const sched = `{"name":"b-report","cron":"0 3 * * *","timeZone":"UTC","job":{"queue":"isolation","type":"report.generation","tenantId":"B"}}`
	if status, resp := a.call(t, "admin", "POST", "/api/v1/schedules", sched); status != 201 {
		t.Fatalf("create tenant B's schedule: %d %v", status, resp)
	}
	return []attempt{
		{name: "list schedules", method: "GET", path: "/api/v1/schedules", sees: listHas("schedules", "name", "b-report")},
		{name: "get B's schedule", method: "GET", path: "/api/v1/schedules/b-report"},
		{name: "pause B's schedule", method: "POST", path: "/api/v1/schedules/b-report/pause"},
		{name: "resume B's schedule", method: "POST", path: "/api/v1/schedules/b-report/resume"},
		{name: "update B's schedule", method: "PUT", path: "/api/v1/schedules/b-report", body: sched},
		{name: "create a schedule for B", method: "POST", path: "/api/v1/schedules", body: strings.Replace(sched, "b-report", "b-other", 1)},
		{name: "delete B's schedule", method: "DELETE", path: "/api/v1/schedules/b-report"},
	}
}

// isoFlow is the workflow the isolation test runs for tenant B.
const isoFlow = "iso-flow"

// workflowAttempts are the attempts on tenant B's workflow run; the
// cancel comes last, as the admin's cancel ends the run.
func workflowAttempts(t *testing.T, a *apiBundle) []attempt {
	run, err := a.svc.Workflows().Execute(context.Background(), isoFlow, workflow.Data{"invoiceId": "b-1"}, workflow.ExecuteOptions{TenantID: "B"})
	if err != nil {
		t.Fatalf("start tenant B's run: %v", err)
	}
	return []attempt{
		{name: "list runs", method: "GET", path: "/api/v1/workflows/runs?workflow=" + isoFlow, sees: listHas("runs", "id", run.ID)},
		{name: "list runs with tenant=B", method: "GET", path: "/api/v1/workflows/runs?workflow=" + isoFlow + "&tenant=B", sees: listHas("runs", "id", run.ID)},
		{name: "get B's run", method: "GET", path: "/api/v1/workflows/runs/" + run.ID},
		{name: "start a run for B", method: "POST", path: "/api/v1/workflows/" + isoFlow + "/runs", body: `{"data":{"invoiceId":"b-2"},"tenantId":"B"}`},
		{name: "cancel B's run", method: "POST", path: "/api/v1/workflows/runs/" + run.ID + "/cancel"},
	}
}

// oneTimeAttempts are the attempts on tenant B's one-time schedule; the
// cancel comes last.
func oneTimeAttempts(t *testing.T, a *apiBundle) []attempt {
	once := func(name string) string {
		return `{"name":"` + name + `","runAt":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) +
			`","job":{"queue":"` + isoQueue + `","type":"invoice.reminder","tenantId":"B"}}`
	}
	if status, resp := a.call(t, "admin", "POST", "/api/v1/one-time-schedules", once("b-once")); status != 201 {
		t.Fatalf("create tenant B's one-time schedule: %d %v", status, resp)
	}
	return []attempt{
		{name: "list one-time schedules", method: "GET", path: "/api/v1/one-time-schedules?queue=" + isoQueue, sees: listHas("schedules", "name", "b-once")},
		{name: "get B's one-time schedule", method: "GET", path: "/api/v1/one-time-schedules/" + isoQueue + "/b-once"},
		{name: "create a one-time schedule for B", method: "POST", path: "/api/v1/one-time-schedules", body: once("b-twice")},
		{name: "cancel B's one-time schedule", method: "DELETE", path: "/api/v1/one-time-schedules/" + isoQueue + "/b-once"},
	}
}

// ledgerAttempts are the attempts on tenant B's books (company bco):
// tenant A's token naming tenant B with ?tenant= is 404, the cross-tenant
// admin's same call reaches B's books.
func ledgerAttempts(t *testing.T, a *apiBundle) []attempt {
	ctx := context.Background()
	b := accounting.Books{Tenant: "B", Company: "bco"}
	if _, err := a.ledger.CompanyCreate(ctx, accounting.Company{Tenant: "B", ID: "bco", Name: "B Co", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := a.ledger.PartyCreate(ctx, b, accounting.Party{Kind: accounting.Customer, ID: "bc", Name: "B's customer"}); err != nil {
		t.Fatal(err)
	}
	const c, q = "/api/v1/companies/bco", "?tenant=B"
	inv := func(id string) string {
		return `{"id":"` + id + `","partyId":"bc","currency":"EUR","issueDate":"2026-01-10","lines":[{"description":"x","quantity":1,"unitPrice":100}]}`
	}
	if status, resp := a.call(t, "admin", "POST", c+"/invoices"+q, inv("binv")); status != 201 {
		t.Fatalf("create tenant B's invoice: %d %v", status, resp)
	}
	return []attempt{
		{name: "create a company for B", method: "POST", path: "/api/v1/companies" + q, body: `{"id":"bco2","currency":"EUR"}`},
		{name: "create B's customer", method: "POST", path: c + "/customers" + q, body: `{"id":"bc2"}`},
		{name: "create B's vendor", method: "POST", path: c + "/vendors" + q, body: `{"id":"bv"}`},
		{name: "create B's invoice", method: "POST", path: c + "/invoices" + q, body: inv("binv2")},
		{name: "create B's bill", method: "POST", path: c + "/bills" + q, body: strings.Replace(inv("bbill"), `"bc"`, `"bv"`, 1)},
		{name: "get B's invoice", method: "GET", path: c + "/invoices/binv" + q},
		{name: "update B's invoice", method: "PUT", path: c + "/invoices/binv" + q, body: strings.Replace(inv("binv"), `"id":"binv"`, `"version":1`, 1)},
		{name: "process B's invoice", method: "POST", path: c + "/invoices/binv/process" + q, adminWant: 202},
		{name: "void B's invoice", method: "POST", path: c + "/invoices/binv/void" + q, body: `{"version":2}`},
		{name: "record B's payment", method: "POST", path: c + "/payments" + q, body: `{"id":"bpay","customerId":"bc","currency":"EUR","amount":50,"received":"2026-02-01"}`},
		{name: "process B's payment", method: "POST", path: c + "/payments/bpay/process" + q, adminWant: 202},
		{name: "read B's trial balance", method: "GET", path: c + "/trial-balance" + q},
		{name: "read B's receivable account", method: "GET", path: c + "/accounts/1200/activity" + q},
		{name: "read B's receivables", method: "GET", path: c + "/receivables" + q},
		{name: "read B's payables", method: "GET", path: c + "/payables" + q},
	}
}

// TestAPITenantIsolation: a token scoped to tenant A tries every kind of
// access to tenant B's resources and succeeds at none (each 404 or 403,
// and no listing shows them); the cross-tenant admin's same calls succeed,
// so the test can fail.
func TestAPITenantIsolation(t *testing.T) {
	eachBroker(t, func(t *testing.T, a *apiBundle) {
		attempts := []attempt{
			{name: "list tokens", method: "GET", path: "/api/v1/tokens", sees: listHas("tokens", "name", "viewer-B")},
			{name: "make a token for B", method: "POST", path: "/api/v1/tokens", body: `{"name":"b-new","role":"viewer","tenantId":"B"}`},
			{name: "revoke B's token", method: "DELETE", path: "/api/v1/tokens/" + a.tokenID(t, "viewer-B")},
		}
		attempts = append(attempts, jobAttempts(t, a)...)
		attempts = append(attempts, tenantAttempts(t, a)...)
		attempts = append(attempts, scheduleAttempts(t, a)...)
		attempts = append(attempts, workflowAttempts(t, a)...)
		attempts = append(attempts, oneTimeAttempts(t, a)...)
		attempts = append(attempts, ledgerAttempts(t, a)...)
		for _, at := range attempts {
			before := a.bJobs(t)
			status, resp := a.call(t, "admin-A", at.method, at.path, at.body)
			if at.sees != nil {
				if status != 200 && status != 403 && status != 404 {
					t.Errorf("%s as tenant A: %d %v, want 200 without B's, 403 or 404", at.name, status, resp)
				} else if at.sees(resp) {
					t.Errorf("%s as tenant A shows tenant B's: %v", at.name, resp)
				}
			} else if status != 403 && status != 404 {
				t.Errorf("%s as tenant A: %d %v, want 403 or 404", at.name, status, resp)
			}
			if now := a.bJobs(t); now != before {
				t.Errorf("%s as tenant A changed tenant B's jobs: %s, were %s", at.name, now, before)
			}
			status, resp = a.call(t, "admin", at.method, at.path, at.body)
			ok := status/100 == 2
			if at.adminWant != 0 {
				ok = status == at.adminWant
			}
			if !ok || (at.sees != nil && !at.sees(resp)) {
				t.Errorf("%s as the cross-tenant admin: %d %v, want success and B's resource", at.name, status, resp)
			}
		}
	})
}

// TestFileQueuesReadOnlyThroughAPI: serve reconciles the config file's
// queues at start, so the API shows them as managed by the file and
// refuses to resize them, while a queue the file does not declare stays
// open to it.
func TestFileQueuesReadOnlyThroughAPI(t *testing.T) {
	file := writeFile(t, "queues:\n  - {name: invoices, priority: 1, concurrency: 3}\n")
	for kind, vars := range brokerEnvs(t) {
		t.Run(kind, func(t *testing.T) {
			a := startAPIFile(t, vars, file)
			if _, err := a.svc.Client().Add(context.Background(), "invoices", worker.JobSpec{Type: "x", Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
			status, resp := a.call(t, "admin", "GET", "/api/v1/queues", "")
			if status != 200 || !listHas("queues", "managedBy", "config")(resp) {
				t.Fatalf("queues: %d %v, want invoices managed by config", status, resp)
			}
			status, resp = a.call(t, "admin", "PUT", "/api/v1/queues/invoices/concurrency", `{"concurrency":1}`)
			if status != 409 || !strings.Contains(fmt.Sprint(resp), "aibos-worker.yaml") {
				t.Fatalf("resize a queue the file declares: %d %v, want 409 naming the file", status, resp)
			}
			status, resp = a.call(t, "admin", "PUT", "/api/v1/queues/other/concurrency", `{"concurrency":1}`)
			if status/100 != 2 {
				t.Fatalf("resize a queue the file does not declare: %d %v, want success", status, resp)
			}
		})
	}
}
