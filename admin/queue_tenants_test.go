package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
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
