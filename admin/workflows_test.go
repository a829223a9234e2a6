package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/workflow"
)

// invoiceEngine returns an engine with the two-step workflow "invoice"
// registered. No Manager runs it: its runs stay running, validate pending
// and post waiting, which is what the API shows.
func invoiceEngine(t *testing.T, b broker.Broker) *workflow.Engine {
	t.Helper()
	e, err := workflow.NewEngine(b, workflow.Config{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	noop := workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) { return nil, nil })
	if err := e.RegisterStepProcessor("noop", noop); err != nil {
		t.Fatal(err)
	}
	if err := e.Register(workflow.Workflow{Name: "invoice", Steps: []workflow.Step{{Name: "validate", Processor: "noop"}, {Name: "post", Processor: "noop"}}}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestWorkflowRuns(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := newSchedAPI(t, b, invoiceEngine(t, b), nil)
		start := func(token string, body any, header ...string) *apitest.Response {
			return a.do("POST", "/api/v1/workflows/invoice/runs", token, body, header...)
		}
		r := want(t, "start", start("operator-a", map[string]any{"data": map[string]any{"invoice": 1}}), http.StatusCreated)
		run := jsonOf(t, r)
		id := run["id"].(string)
		if run["tenantId"] != "tenant-a" || run["state"] != "running" || r.Header.Get("Location") != "/api/v1/workflows/runs/"+id {
			t.Errorf("started run %s", r.Body)
		}
		steps := run["steps"].([]any)
		if len(steps) != 2 || steps[0].(map[string]any)["state"] != "pending" || steps[1].(map[string]any)["state"] != "waiting" {
			t.Errorf("steps %v: want validate pending, post waiting", steps)
		}

		// Get shows step states; tenant-b's run is 404 to tenant-a.
		got := jsonOf(t, want(t, "get", a.do("GET", "/api/v1/workflows/runs/"+id, "viewer-a", nil), http.StatusOK))
		if got["steps"].([]any)[0].(map[string]any)["name"] != "validate" {
			t.Errorf("get: %v", got)
		}
		b1 := jsonOf(t, want(t, "start for tenant-b", start("operator", map[string]any{"tenantId": "tenant-b"}), http.StatusCreated))["id"].(string)
		wantErr(t, "get b's as tenant-a", a.do("GET", "/api/v1/workflows/runs/"+b1, "viewer-a", nil), http.StatusNotFound, admin.CodeNotFound, "id")
		wantErr(t, "cancel b's as tenant-a", a.do("POST", "/api/v1/workflows/runs/"+b1+"/cancel", "operator-a", nil), http.StatusNotFound, admin.CodeNotFound, "id")
		wantErr(t, "start for tenant-b as tenant-a", start("operator-a", map[string]any{"tenantId": "tenant-b"}), http.StatusForbidden, admin.CodeForbidden, "tenantId")
		if run, err := a.wf.Get(context.Background(), b1); err != nil || run.State != workflow.StateRunning {
			t.Errorf("tenant-b's run after tenant-a's cancel: %+v, %v", run, err)
		}

		// Errors.
		wantErr(t, "unknown workflow", a.do("POST", "/api/v1/workflows/nope/runs", "operator", map[string]any{}), http.StatusNotFound, admin.CodeNotFound, "name")
		wantErr(t, "viewer starts", start("viewer", map[string]any{}), http.StatusForbidden, admin.CodeForbidden, "")
		wantErr(t, "data not an object", start("operator", `{"data":[1]}`), http.StatusBadRequest, admin.CodeBadRequest, "data")
		wantErr(t, "unknown field", start("operator", `{"input":{}}`), http.StatusBadRequest, admin.CodeBadRequest, "input")
		wantErr(t, "get missing", a.do("GET", "/api/v1/workflows/runs/nope", "viewer", nil), http.StatusNotFound, admin.CodeNotFound, "id")

		// Cancel: the run and its steps are cancelled; again is 409.
		r = want(t, "cancel", a.do("POST", "/api/v1/workflows/runs/"+id+"/cancel", "operator-a", nil), http.StatusOK)
		if got := jsonOf(t, r); got["state"] != "cancelled" {
			t.Errorf("cancel answered %s", r.Body)
		}
		wantErr(t, "cancel again", a.do("POST", "/api/v1/workflows/runs/"+id+"/cancel", "operator-a", nil), http.StatusConflict, admin.CodeConflict, "id")
	})
}

// TestWorkflowRunIdempotency: 20 concurrent starts with one Idempotency-Key
// make one run; the same key with other data is 422; the key in the body
// works as the header does.
func TestWorkflowRunIdempotency(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := newSchedAPI(t, b, invoiceEngine(t, b), nil)
		body := map[string]any{"data": map[string]any{"invoice": 7, "total": "12.50"}}
		ids := make([]string, 20)
		statuses := make([]int, 20)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := a.do("POST", "/api/v1/workflows/invoice/runs", "operator", body, "Idempotency-Key", "inv-7")
				statuses[i] = r.Status
				if r.Status < 300 {
					ids[i], _ = jsonOf(t, r)["id"].(string)
				}
			}()
		}
		wg.Wait()
		created := 0
		for i, st := range statuses {
			if st == http.StatusCreated {
				created++
			}
			if ids[i] == "" || ids[i] != ids[0] {
				t.Fatalf("start %d: status %d, run %q; want every start to answer run %q", i, st, ids[i], ids[0])
			}
		}
		if created != 1 {
			t.Errorf("%d of 20 starts answered 201, want 1 (the others 200)", created)
		}
		page, err := a.wf.Page(context.Background(), workflow.PageParams{Workflow: "invoice"})
		if err != nil || len(page.Runs) != 1 {
			t.Fatalf("runs stored: %v, %v; want 1", page, err)
		}
		other := map[string]any{"data": map[string]any{"invoice": 8}, "idempotencyKey": "inv-7"}
		wantErr(t, "same key, other data", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", other), http.StatusUnprocessableEntity, admin.CodeIdempotency, "Idempotency-Key")
		body["idempotencyKey"] = "inv-7"
		r := want(t, "key in the body", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", body), http.StatusOK)
		if jsonOf(t, r)["id"] != ids[0] {
			t.Errorf("the body's key answered %s, want run %s", r.Body, ids[0])
		}
		wantErr(t, "body and header differ", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", body, "Idempotency-Key", "other"),
			http.StatusBadRequest, admin.CodeBadRequest, "idempotencyKey")
	})
}

// TestWorkflowRunList: cursor paging over every page with no run twice or
// missed, even when runs are started between pages; filters by state and
// tenant; a scoped token lists only its tenant's runs.
func TestWorkflowRunList(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		a := newSchedAPI(t, b, invoiceEngine(t, b), nil)
		ctx := context.Background()
		var aRuns []string
		for i := range 7 {
			tenant := "tenant-a"
			if i%3 == 2 {
				tenant = "tenant-b"
			}
			run, err := a.wf.Execute(ctx, "invoice", nil, workflow.ExecuteOptions{TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			if tenant == "tenant-a" {
				aRuns = append(aRuns, run.ID)
			}
		}
		list := func(token, query string) ([]string, string) {
			l := jsonOf(t, want(t, "list "+query, a.do("GET", "/api/v1/workflows/runs?"+query, token, nil), http.StatusOK))
			var ids []string
			for _, r := range l["runs"].([]any) {
				ids = append(ids, r.(map[string]any)["id"].(string))
			}
			next, _ := l["nextCursor"].(string)
			return ids, next
		}
		// Every page of tenant-a's runs, two at a time, with runs started
		// between pages (often in the millisecond of the page's last run):
		// each run once, newest first.
		var seen []string
		cursor := ""
		for page := 0; ; page++ {
			ids, next := list("viewer-a", "workflow=invoice&limit=2&cursor="+cursor)
			seen = append(seen, ids...)
			if page == 0 {
				for range 3 {
					if _, err := a.wf.Execute(ctx, "invoice", nil, workflow.ExecuteOptions{TenantID: "tenant-a"}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if next == "" {
				break
			}
			cursor = next
			if page > 10 {
				t.Fatal("paging does not end")
			}
		}
		wantIDs := make([]string, len(aRuns))
		for i, id := range aRuns {
			wantIDs[len(aRuns)-1-i] = id
		}
		if strings.Join(seen, ",") != strings.Join(wantIDs, ",") {
			t.Errorf("tenant-a's pages hold\n%v\nwant its %d runs newest first\n%v", seen, len(wantIDs), wantIDs)
		}
		if ids, _ := list("viewer", "workflow=invoice&tenant=tenant-b"); len(ids) != 2 {
			t.Errorf("tenant=tenant-b lists %d runs, want 2", len(ids))
		}
		if ids, _ := list("viewer", "workflow=invoice"); len(ids) != 10 {
			t.Errorf("a cross-tenant token lists %d runs, want 10", len(ids))
		}
		if _, err := a.wf.Cancel(ctx, aRuns[0]); err != nil {
			t.Fatal(err)
		}
		if ids, _ := list("viewer-a", "workflow=invoice&state=cancelled"); fmt.Sprint(ids) != fmt.Sprint([]string{aRuns[0]}) {
			t.Errorf("state=cancelled lists %v, want [%s]", ids, aRuns[0])
		}
		wantErr(t, "filter bypass", a.do("GET", "/api/v1/workflows/runs?workflow=invoice&tenant=tenant-b", "viewer-a", nil), http.StatusForbidden, admin.CodeForbidden, "tenant")
		wantErr(t, "no workflow", a.do("GET", "/api/v1/workflows/runs", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "workflow")
		wantErr(t, "bad state", a.do("GET", "/api/v1/workflows/runs?workflow=invoice&state=done", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "state")
		wantErr(t, "bad cursor", a.do("GET", "/api/v1/workflows/runs?workflow=invoice&cursor=zzz", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "cursor")
		wantErr(t, "bad limit", a.do("GET", "/api/v1/workflows/runs?workflow=invoice&limit=0", "viewer", nil), http.StatusBadRequest, admin.CodeBadRequest, "limit")
		wantErr(t, "no token", a.do("GET", "/api/v1/workflows/runs?workflow=invoice", "", nil), http.StatusUnauthorized, admin.CodeUnauthenticated, "Authorization")
	})
}

// TestWorkflowCancelSendsCallback: with callbacks configured, cancelling
// through the API goes through Callbacks.CancelRun, so the run's
// workflow.cancelled callback is stored for delivery.
func TestWorkflowCancelSendsCallback(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		cb, err := httpproc.NewCallbacks(b, httpproc.CallbackConfig{URL: "http://127.0.0.1:1/callbacks", Secret: "whsec_c2VjcmV0"})
		if err != nil {
			t.Fatal(err)
		}
		a := newSchedAPI(t, b, invoiceEngine(t, b), cb)
		id := jsonOf(t, want(t, "start", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", map[string]any{}), http.StatusCreated))["id"].(string)
		want(t, "cancel", a.do("POST", "/api/v1/workflows/runs/"+id+"/cancel", "operator", nil), http.StatusOK)
		j, err := a.client.Get(context.Background(), a.wf.Queue(), httpproc.CallbackRunID(id))
		if err != nil || j.Type != httpproc.CallbackType || !strings.Contains(string(j.Data), httpproc.EventWorkflowCancelled) {
			t.Errorf("callback job of the cancelled run: %+v, %v", j, err)
		}
	})
}

// TestWorkflowList checks the registered workflows are listed by name to
// any role, and that a service without workflows says so.
func TestWorkflowList(t *testing.T) {
	b := testbroker.SQLite(t)
	a := newSchedAPI(t, b, invoiceEngine(t, b), nil)
	var out struct {
		Workflows []struct {
			Name string `json:"name"`
		} `json:"workflows"`
	}
	want(t, "list", a.do("GET", "/api/v1/workflows", "viewer-a", nil), http.StatusOK).JSON(t, &out)
	if len(out.Workflows) != 1 || out.Workflows[0].Name != "invoice" {
		t.Fatalf("workflows %+v, want invoice", out.Workflows)
	}
	wantErr(t, "no token", a.do("GET", "/api/v1/workflows", "", nil), http.StatusUnauthorized, admin.CodeUnauthenticated, "Authorization")
	none := newSchedAPI(t, testbroker.SQLite(t), nil, nil)
	wantErr(t, "no engine", none.do("GET", "/api/v1/workflows", "viewer", nil), http.StatusNotFound, admin.CodeNotFound, "")
}

// TestEncryptedWorkflowRunsThroughAPI: with the engine's queue encrypted,
// a run started through the API is stored sealed, an operator reads its
// input in plain text and a viewer has it redacted, and a second start
// with the same Idempotency-Key and data finds the run (its input
// compared opened).
func TestEncryptedWorkflowRunsThroughAPI(t *testing.T) {
	const marker = "API-RUN-MARKER-FR1420041010050500013M02606"
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		k, err := envelope.NewKey("k1")
		if err != nil {
			t.Fatal(err)
		}
		ring, err := envelope.NewRing(k)
		if err != nil {
			t.Fatal(err)
		}
		e, err := workflow.NewEngine(b, workflow.Config{Logger: quietLog,
			Encryption: &worker.Encryption{Keys: ring, Queues: []string{workflow.DefaultQueue}}})
		if err != nil {
			t.Fatal(err)
		}
		noop := workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) { return nil, nil })
		if err := e.RegisterStepProcessor("noop", noop); err != nil {
			t.Fatal(err)
		}
		if err := e.Register(workflow.Workflow{Name: "invoice", Steps: []workflow.Step{{Name: "validate", Processor: "noop"}}}); err != nil {
			t.Fatal(err)
		}
		a := newSchedAPI(t, b, e, nil)
		body := map[string]any{"data": map[string]any{"iban": marker}}
		r := want(t, "start", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", body, "Idempotency-Key", "k"), http.StatusCreated)
		id := jsonOf(t, r)["id"].(string)
		want(t, "start again", a.do("POST", "/api/v1/workflows/invoice/runs", "operator", body, "Idempotency-Key", "k"), http.StatusOK)
		d, err := b.(broker.Committer).DocGet(context.Background(), workflow.DefaultQueue, "run", id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(d.Body), marker) {
			t.Fatalf("the run is stored as %s: want its input sealed", d.Body)
		}
		for _, role := range []string{"operator", "viewer"} {
			got := want(t, role+" gets", a.do("GET", "/api/v1/workflows/runs/"+id, role, nil), http.StatusOK)
			checkPayload(t, role+" gets the encrypted run", role != "viewer", string(got.Body), marker)
		}
	})
}
