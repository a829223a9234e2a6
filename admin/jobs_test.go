package admin_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

func start(t *testing.T, b broker.Broker) *apitest.Server {
	t.Helper()
	return apitest.Start(t, admin.Config{Broker: b, MaxBodyBytes: 4096})
}

func TestEnqueueAndInspect(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		var j admin.Job
		srv.Do(t, "POST", "/api/v1/queues/q1/jobs", apitest.Operator,
			`{"type":"invoice.processing","data":{"n":1},"priority":2,"attempts":4,"tenantId":"t1","companyId":"c1"}`).
			Want(t, http.StatusCreated).JSON(t, &j)
		if j.ID == "" || j.Queue != "q1" || j.Priority != 2 || j.MaxAttempts != 4 || j.TenantID != "t1" || j.CompanyID != "c1" || j.State != "pending" {
			t.Fatalf("enqueued job %+v", j)
		}
		var delayed admin.Job
		srv.Do(t, "POST", "/api/v1/queues/q2/jobs", apitest.Operator, `{"type":"x","delay":60000}`).Want(t, http.StatusCreated).JSON(t, &delayed)
		if delayed.State != "scheduled" || delayed.RunAt.Sub(delayed.CreatedAt) < 59e9 {
			t.Fatalf("delayed job %+v", delayed)
		}
		// A bare id is found in whichever queue holds it. (A viewer would
		// get the job without its data: TestPayloadRule.)
		var got admin.Job
		srv.Do(t, "GET", "/api/v1/jobs/"+j.ID, apitest.Operator, nil).Want(t, http.StatusOK).JSON(t, &got)
		if got.ID != j.ID || got.Queue != "q1" || string(got.Data) != `{"n":1}` {
			t.Fatalf("got %+v", got)
		}
		srv.Do(t, "GET", "/api/v1/jobs/"+j.ID+"?queue=q2", apitest.Viewer, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "GET", "/api/v1/jobs/nope", apitest.Viewer, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)

		var page admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs?queue=q1&state=pending&type=invoice.processing&tenant=t1", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 1 || page.Jobs[0].ID != j.ID {
			t.Fatalf("filtered list %+v", page)
		}

		var c admin.Job
		srv.Do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", apitest.Operator, nil).Want(t, http.StatusOK).JSON(t, &c)
		if c.State != "cancelled" {
			t.Fatalf("cancelled job is %s", c.State)
		}
		srv.Do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", apitest.Operator, nil).WantError(t, http.StatusConflict, admin.CodeConflict)
		srv.Do(t, "POST", "/api/v1/jobs/"+delayed.ID+"/retry", apitest.Operator, nil).WantError(t, http.StatusConflict, admin.CodeConflict)
		var rj admin.Job
		srv.Do(t, "POST", "/api/v1/jobs/"+j.ID+"/retry", apitest.Operator, nil).Want(t, http.StatusOK).JSON(t, &rj)
		if rj.State != "pending" {
			t.Fatalf("retried job is %s", rj.State)
		}
		srv.Do(t, "POST", "/api/v1/jobs/nope/retry", apitest.Operator, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", apitest.Operator, nil).Want(t, http.StatusOK)
		srv.Do(t, "DELETE", "/api/v1/jobs/"+j.ID, apitest.Operator, nil).Want(t, http.StatusNoContent)
		srv.Do(t, "DELETE", "/api/v1/jobs/"+j.ID, apitest.Operator, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		// A viewer reads but does not change.
		srv.Do(t, "DELETE", "/api/v1/jobs/"+delayed.ID, apitest.Viewer, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
	})
}

// TestJobAttemptHistory: GET /api/v1/jobs/{id} shows a job that failed once
// then completed with both attempts (validated against the document by
// apitest); a job never tried shows an empty list, and listings leave the
// field out.
func TestJobAttemptHistory(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		ctx := t.Context()
		var j admin.Job
		srv.Do(t, "POST", "/api/v1/queues/hq/jobs", apitest.Operator, `{"type":"x","attempts":3}`).Want(t, http.StatusCreated).JSON(t, &j)
		if r := srv.Do(t, "GET", "/api/v1/jobs/"+j.ID, apitest.Viewer, nil).Want(t, http.StatusOK); !bytes.Contains(r.Body, []byte(`"attempts":[]`)) {
			t.Fatalf("a job never tried: %s; want \"attempts\":[]", r.Body)
		}
		var tried []*broker.Job
		for range 2 {
			deadline := time.Now().Add(5 * time.Second)
			var got []*broker.Job
			for len(got) == 0 {
				var err error
				got, err = b.JobFetch(ctx, &broker.JobFetchParams{Queue: "hq", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w1"})
				if err != nil || time.Now().After(deadline) {
					t.Fatalf("fetch attempt %d: %v, %v", len(tried)+1, got, err)
				}
			}
			tried = append(tried, got[0])
			lp := broker.JobLeaseParams{Queue: "hq", ID: j.ID, Token: got[0].LeaseToken}
			if len(tried) == 1 {
				if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lp, Error: "ledger locked"}); err != nil {
					t.Fatal(err)
				}
			} else if errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lp}}); err != nil || errs[0] != nil {
				t.Fatalf("complete: %v, %v", errs, err)
			}
		}
		var got admin.Job
		srv.Do(t, "GET", "/api/v1/jobs/"+j.ID, apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &got)
		want := []admin.Attempt{
			{Attempt: 1, WorkerID: "w1", StartedAt: tried[0].StartedAt, Outcome: "retry_scheduled", Error: "ledger locked"},
			{Attempt: 2, WorkerID: "w1", StartedAt: tried[1].StartedAt, Outcome: "completed"},
		}
		if len(got.Attempts) != len(want) {
			t.Fatalf("attempts %+v, want %+v", got.Attempts, want)
		}
		for i, a := range got.Attempts {
			w := want[i]
			if a.Attempt != w.Attempt || a.WorkerID != w.WorkerID || a.Outcome != w.Outcome || a.Error != w.Error ||
				!a.StartedAt.Equal(w.StartedAt) || a.FinishedAt.Before(a.StartedAt) {
				t.Fatalf("attempt %d: %+v, want %+v finished after it started", i, a, w)
			}
		}
		if r := srv.Do(t, "GET", "/api/v1/jobs?queue=hq&state=completed", apitest.Viewer, nil).Want(t, http.StatusOK); bytes.Contains(r.Body, []byte(`"attempts"`)) {
			t.Fatalf("a listing shows attempt histories: %s", r.Body)
		}
	})
}

func TestEnqueueRefusesBadInput(t *testing.T) {
	srv := start(t, testbroker.SQLite(t))
	big := `{"type":"x","data":"` + strings.Repeat("a", 5000) + `"}`
	for _, c := range []struct {
		name, path, body string
		header           []string
		status           int
		code, field      string
	}{
		{"not json", "/api/v1/queues/q/jobs", `{"type":`, nil, 400, admin.CodeBadRequest, ""},
		{"unknown field", "/api/v1/queues/q/jobs", `{"type":"x","prio":1}`, nil, 400, admin.CodeBadRequest, "prio"},
		{"wrong type", "/api/v1/queues/q/jobs", `{"type":"x","delay":"soon"}`, nil, 400, admin.CodeBadRequest, "delay"},
		{"bad queue", "/api/v1/queues/a%20b/jobs", `{"type":"x"}`, nil, 400, admin.CodeBadRequest, "queue"},
		{"too large", "/api/v1/queues/q/jobs", big, nil, 413, admin.CodeTooLarge, ""},
		{"not json media", "/api/v1/queues/q/jobs", `{"type":"x"}`, []string{"Content-Type", "text/plain"}, 415, admin.CodeUnsupported, "Content-Type"},
		{"no type", "/api/v1/queues/q/jobs", `{"data":1}`, nil, 422, admin.CodeInvalid, "type"},
		{"priority", "/api/v1/queues/q/jobs", `{"type":"x","priority":1001}`, nil, 422, admin.CodeInvalid, "priority"},
		{"delay", "/api/v1/queues/q/jobs", `{"type":"x","delay":-1}`, nil, 422, admin.CodeInvalid, "delay"},
		{"attempts", "/api/v1/queues/q/jobs", `{"type":"x","attempts":-2}`, nil, 422, admin.CodeInvalid, "attempts"},
		{"empty batch", "/api/v1/queues/q/jobs/batch", `{"jobs":[]}`, nil, 422, admin.CodeInvalid, "jobs"},
		{"bad batch job", "/api/v1/queues/q/jobs/batch", `{"jobs":[{"type":"x"},{"type":""}]}`, nil, 422, admin.CodeInvalid, "jobs[1].type"},
		{"bad key", "/api/v1/queues/q/jobs", `{"type":"x"}`, []string{"Idempotency-Key", "é"}, 400, admin.CodeBadRequest, "Idempotency-Key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := srv.Do(t, "POST", c.path, apitest.Operator, c.body, c.header...).WantError(t, c.status, c.code)
			if e.Field != c.field {
				t.Fatalf("field %q, want %q: %s", e.Field, c.field, e.Message)
			}
		})
	}
	srv.Do(t, "POST", "/api/v1/queues/q/jobs", "", `{"type":"x"}`).WantError(t, http.StatusUnauthorized, admin.CodeUnauthenticated)
	srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Viewer, `{"type":"x"}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
	// Nothing of the above was added.
	var page admin.JobPage
	srv.Do(t, "GET", "/api/v1/jobs", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
	if len(page.Jobs) != 0 {
		t.Fatalf("refused requests added %d jobs", len(page.Jobs))
	}
}

func TestBatchIsAllOrNone(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		var out admin.BatchResponse
		srv.Do(t, "POST", "/api/v1/queues/q/jobs/batch", apitest.Operator, `{"jobs":[{"type":"a"},{"type":"b","priority":1}]}`).
			Want(t, http.StatusCreated).JSON(t, &out)
		if len(out.Jobs) != 2 || out.Jobs[0].Type != "a" || out.Jobs[1].Priority != 1 {
			t.Fatalf("batch %+v", out)
		}
		var page admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs?queue=q&limit=1", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 1 || page.NextCursor == "" {
			t.Fatalf("first page %+v", page)
		}
		var next admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs?queue=q&limit=1&cursor="+page.NextCursor, apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &next)
		if len(next.Jobs) != 1 || next.Jobs[0].ID == page.Jobs[0].ID {
			t.Fatalf("second page %+v after %+v", next, page)
		}
		srv.Do(t, "GET", "/api/v1/jobs?cursor=zzz", apitest.Viewer, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "GET", "/api/v1/jobs?state=odd", apitest.Viewer, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
	})
}

func TestIdempotencyKey(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		body := `{"type":"report","data":{"month":11}}`
		var wg sync.WaitGroup
		resps := make([]*apitest.Response, 20)
		for i := range resps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resps[i] = srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, body, "Idempotency-Key", "k-1")
			}()
		}
		wg.Wait()
		for i, r := range resps {
			if r.Status != http.StatusCreated || !bytes.Equal(r.Body, resps[0].Body) {
				t.Fatalf("request %d: %d %s; first: %d %s", i, r.Status, r.Body, resps[0].Status, resps[0].Body)
			}
		}
		var page admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs?queue=q", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 1 {
			t.Fatalf("20 requests with one key made %d jobs", len(page.Jobs))
		}
		// The same key with another body is refused.
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"other"}`, "Idempotency-Key", "k-1").
			WantError(t, http.StatusUnprocessableEntity, admin.CodeIdempotency)
		// Keys are per tenant: tenant A's k-1 is not the cross-tenant k-1.
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Scoped(admin.RoleOperator, apitest.TenantA), body, "Idempotency-Key", "k-1").Want(t, http.StatusCreated)
		srv.Do(t, "GET", "/api/v1/jobs?queue=q", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 2 {
			t.Fatalf("a tenant's key matched another scope's: %d jobs", len(page.Jobs))
		}
	})
}

func TestTenantScopedToken(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		opA := apitest.Scoped(admin.RoleOperator, apitest.TenantA)
		var ja, jb admin.Job
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", opA, `{"type":"x"}`).Want(t, http.StatusCreated).JSON(t, &ja)
		if ja.TenantID != apitest.TenantA {
			t.Fatalf("a scoped token's job has tenant %q", ja.TenantID)
		}
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x","tenantId":"`+apitest.TenantB+`"}`).Want(t, http.StatusCreated).JSON(t, &jb)
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", opA, `{"type":"x","tenantId":"`+apitest.TenantB+`"}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "GET", "/api/v1/jobs/"+jb.ID, opA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "POST", "/api/v1/jobs/"+jb.ID+"/cancel", opA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "DELETE", "/api/v1/jobs/"+jb.ID, opA, nil).WantError(t, http.StatusNotFound, admin.CodeNotFound)
		srv.Do(t, "GET", "/api/v1/jobs?tenant="+apitest.TenantB, opA, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/jobs/bulk", opA, `{"action":"delete","filter":{"tenant":"`+apitest.TenantB+`"}}`).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		var page admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs", opA, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 1 || page.Jobs[0].ID != ja.ID {
			t.Fatalf("tenant A lists %+v", page.Jobs)
		}
		srv.Do(t, "POST", "/api/v1/queues/q/pause", opA, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		// The admin token does what the scoped one may not.
		srv.Do(t, "GET", "/api/v1/jobs/"+jb.ID, apitest.Admin, nil).Want(t, http.StatusOK)
	})
}

func TestBulkRetryAndDelete(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		for range 3 {
			var j admin.Job
			srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated).JSON(t, &j)
			srv.Do(t, "POST", "/api/v1/jobs/"+j.ID+"/cancel", apitest.Operator, nil).Want(t, http.StatusOK)
		}
		srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, `{"type":"x"}`).Want(t, http.StatusCreated)
		var res admin.BulkResponse
		srv.Do(t, "POST", "/api/v1/jobs/bulk", apitest.Operator, `{"action":"retry","filter":{"queue":"q"},"dryRun":true}`).Want(t, http.StatusOK).JSON(t, &res)
		if res.Matched != 3 || res.Done != 0 {
			t.Fatalf("dry run %+v", res)
		}
		srv.Do(t, "POST", "/api/v1/jobs/bulk", apitest.Operator, `{"action":"retry","filter":{"queue":"q","state":"cancelled"}}`).Want(t, http.StatusOK).JSON(t, &res)
		if res.Matched != 3 || res.Done != 3 || res.Failed != 0 {
			t.Fatalf("retry %+v", res)
		}
		var page admin.JobPage
		srv.Do(t, "GET", "/api/v1/jobs?state=pending", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
		if len(page.Jobs) != 4 {
			t.Fatalf("%d pending after bulk retry, want 4", len(page.Jobs))
		}
		srv.Do(t, "POST", "/api/v1/jobs/bulk", apitest.Operator, `{"action":"delete","filter":{"state":"pending"}}`).WantError(t, http.StatusUnprocessableEntity, admin.CodeInvalid)
		srv.Do(t, "POST", "/api/v1/jobs/bulk", apitest.Operator, `{"action":"purge","filter":{}}`).WantError(t, http.StatusUnprocessableEntity, admin.CodeInvalid)
	})
}
