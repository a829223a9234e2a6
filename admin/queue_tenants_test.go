package admin_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/tenant"
)

// TestQueueTenant: an operator pauses and resumes one tenant's jobs of a
// queue; the tenant's share (counts, pause, weight, cap, rate limits) reads
// back; a tenant-scoped token acts only on its own tenant; a viewer may
// read but not pause; a bad tenant id is a 400.
func TestQueueTenant(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		srv := start(t, b)
		fb := b.(broker.FairBroker)
		rate := broker.Rate{Limit: 5, Period: time.Second}
		if err := fb.QueueFairSet(context.Background(), &broker.FairPolicy{Queue: "reports", Fair: true, MaxActive: 4,
			Tenants: map[string]broker.TenantShare{apitest.TenantA: {Weight: 3, Rate: rate}}}); err != nil {
			t.Fatal(err)
		}
		a := "/api/v1/queues/reports/tenants/" + apitest.TenantA
		srv.Do(t, "POST", "/api/v1/queues/reports/jobs", apitest.Operator, `{"type":"x","tenantId":"`+apitest.TenantA+`"}`).Want(t, http.StatusCreated)
		var st map[string]any
		srv.Do(t, "POST", a+"/pause", apitest.Operator, nil).Want(t, http.StatusOK).JSON(t, &st)
		if st["tenantPaused"] != true {
			t.Fatalf("pause answered %v", st)
		}
		var got admin.QueueTenant
		srv.Do(t, "GET", a, apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &got)
		want := admin.RateLimit{Tenant: apitest.TenantA, Limit: 5, PeriodMs: 1000, Available: 5}
		if !got.TenantPaused || got.Paused || got.Counts["pending"] != 1 || !got.Fair || got.Weight != 3 || got.MaxActive != 4 ||
			len(got.Rates) != 1 || got.Rates[0] != want || got.OldestPendingAt == nil {
			t.Fatalf("tenant share %+v; want paused, 1 pending, fair, weight 3, cap 4, rate %+v", got, want)
		}
		srv.Do(t, "POST", a+"/pause", apitest.Viewer, nil).WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/queues/reports/tenants/"+apitest.TenantB+"/pause", apitest.Scoped(admin.RoleOperator, apitest.TenantA), nil).
			WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants/"+apitest.TenantB, apitest.Scoped(admin.RoleViewer, apitest.TenantA), nil).
			WantError(t, http.StatusForbidden, admin.CodeForbidden)
		srv.Do(t, "POST", "/api/v1/queues/a%20b/tenants/x/resume", apitest.Operator, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
		srv.Do(t, "POST", a+"/resume", apitest.Scoped(admin.RoleOperator, apitest.TenantA), nil).Want(t, http.StatusOK).JSON(t, &st)
		srv.Do(t, "GET", a, apitest.Scoped(admin.RoleViewer, apitest.TenantA), nil).Want(t, http.StatusOK).JSON(t, &got)
		if got.TenantPaused || got.Weight != 3 {
			t.Fatalf("after resume: %+v", got)
		}
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants/b%01c", apitest.Viewer, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
	})
}

// TestQueueTenantList: a queue's tenants are the registered ones and those
// whose jobs started lately, by id, each with its depth, running jobs and
// start rate over the last StartRateWindow; pages hold limit of them; a
// tenant-scoped token sees only its own tenant.
func TestQueueTenantList(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		srv := start(t, b)
		reg, err := tenant.New(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Create(ctx, &tenant.Tenant{ID: apitest.TenantB, Name: "B"}); err != nil {
			t.Fatal(err)
		}
		rec, err := series.NewRecorder(b, series.Config{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for tn, n := range map[string]int{apitest.TenantA: 30, "tenant-c": 6} {
			for range n {
				rec.Observe(worker.Event{Kind: worker.EventStarted, Job: &worker.Job{Queue: "reports", ID: "j", TenantID: tn}, Time: now})
			}
		}
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for _, tn := range []string{apitest.TenantA, apitest.TenantA, apitest.TenantB} {
			srv.Do(t, "POST", "/api/v1/queues/reports/jobs", apitest.Operator, `{"type":"x","tenantId":"`+tn+`"}`).Want(t, http.StatusCreated)
		}
		var l admin.QueueTenantList
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &l)
		ids := []string{apitest.TenantA, apitest.TenantB, "tenant-c"}
		slices.Sort(ids)
		if l.Total != 3 || l.NextOffset != -1 || len(l.Tenants) != 3 {
			t.Fatalf("list %+v; want the 3 tenants %v", l, ids)
		}
		by := map[string]admin.QueueTenant{}
		for i, qt := range l.Tenants {
			if qt.Tenant != ids[i] {
				t.Fatalf("tenant %d is %q, want %q (by id)", i, qt.Tenant, ids[i])
			}
			by[qt.Tenant] = qt
		}
		// 30 starts over the window widened to whole minutes: 300..360s.
		if a := by[apitest.TenantA]; a.Counts["pending"] != 2 || a.StartRate < 30.0/360 || a.StartRate > 30.0/300 || a.OldestPendingAt == nil {
			t.Errorf("tenant A %+v; want 2 pending and 30 starts in 5 minutes", a)
		}
		if bq := by[apitest.TenantB]; bq.Counts["pending"] != 1 || bq.StartRate != 0 {
			t.Errorf("tenant B %+v; want 1 pending, no starts", bq)
		}
		if c := by["tenant-c"]; c.Counts["pending"] != 0 || c.StartRate <= 0 {
			t.Errorf("tenant-c %+v; want its starts and nothing pending", c)
		}
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants?limit=2", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &l)
		if len(l.Tenants) != 2 || l.NextOffset != 2 || l.Total != 3 {
			t.Fatalf("first page of 2: %+v", l)
		}
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants?limit=2&offset=2", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &l)
		if len(l.Tenants) != 1 || l.Tenants[0].Tenant != ids[2] || l.NextOffset != -1 {
			t.Fatalf("second page: %+v", l)
		}
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants", apitest.Scoped(admin.RoleViewer, apitest.TenantB), nil).Want(t, http.StatusOK).JSON(t, &l)
		if len(l.Tenants) != 1 || l.Tenants[0].Tenant != apitest.TenantB || l.Total != 1 {
			t.Fatalf("a token of tenant B listed %+v", l)
		}
		srv.Do(t, "GET", "/api/v1/queues/reports/tenants?limit=0", apitest.Viewer, nil).WantError(t, http.StatusBadRequest, admin.CodeBadRequest)
	})
}
