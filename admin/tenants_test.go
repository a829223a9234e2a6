package admin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

func TestTenantsAPI(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		api := newRegistryAPI(t, b)
		acme := map[string]any{"id": tenantA, "name": "Acme", "timeZone": "Europe/Berlin", "currency": "EUR",
			"limits": map[string]any{"maxConcurrency": 4, "ratePerSecond": 1.5, "weight": 2}}

		api.expect(401, "Authorization", "POST", "/api/v1/tenants", "", acme)
		api.expect(403, "", "POST", "/api/v1/tenants", "operator", acme)
		api.expect(403, "", "POST", "/api/v1/tenants", "admin-a", acme)
		created := api.expect(201, "", "POST", "/api/v1/tenants", "admin", acme)
		if created["id"] != tenantA || created["timeZone"] != "Europe/Berlin" || created["createdAt"] == nil {
			t.Fatalf("created %v", created)
		}
		api.expect(409, "id", "POST", "/api/v1/tenants", "admin", acme)
		api.expect(422, "timeZone", "POST", "/api/v1/tenants", "admin", map[string]any{"id": "z", "name": "Z", "timeZone": "Mars/Base"})
		api.expect(422, "currency", "POST", "/api/v1/tenants", "admin", map[string]any{"id": "z", "name": "Z", "currency": "XYZ1"})
		api.expect(422, "limits.weight", "POST", "/api/v1/tenants", "admin", map[string]any{"id": "z", "name": "Z", "limits": map[string]any{"weight": 5000}})
		api.expect(422, "id", "POST", "/api/v1/tenants", "admin", map[string]any{"id": "all", "name": "Everyone"})
		api.expect(400, "colour", "POST", "/api/v1/tenants", "admin", map[string]any{"id": "z", "name": "Z", "colour": "red"})
		api.expect(400, "", "POST", "/api/v1/tenants", "admin", `{"id": "z",`)
		api.expect(201, "", "POST", "/api/v1/tenants", "admin", map[string]any{"id": tenantB, "name": "Bolt"})

		got := api.expect(200, "", "GET", "/api/v1/tenants/"+tenantA, "viewer", nil)
		if got["name"] != "Acme" || got["currency"] != "EUR" {
			t.Fatalf("GET a: %v", got)
		}
		api.expect(404, "id", "GET", "/api/v1/tenants/nobody", "viewer", nil)
		api.expect(404, "id", "GET", "/api/v1/tenants/all", "viewer", nil)
		api.expect(200, "", "GET", "/api/v1/tenants/"+tenantA, "viewer-a", nil)
		api.expect(404, "id", "GET", "/api/v1/tenants/"+tenantB, "viewer-a", nil)

		all := api.expect(200, "", "GET", "/api/v1/tenants?limit=1", "viewer", nil)
		if ts := all["tenants"].([]any); len(ts) != 1 || all["total"] != 2.0 || all["nextOffset"] != 1.0 {
			t.Fatalf("first page of one: %v", all)
		}
		next := api.expect(200, "", "GET", "/api/v1/tenants?limit=1&offset=1", "viewer", nil)
		if ts := next["tenants"].([]any); len(ts) != 1 || ts[0].(map[string]any)["id"] != tenantB || next["nextOffset"] != -1.0 {
			t.Fatalf("second page: %v", next)
		}
		api.expect(400, "limit", "GET", "/api/v1/tenants?limit=0", "viewer", nil)
		own := api.expect(200, "", "GET", "/api/v1/tenants", "viewer-a", nil)
		if ts := own["tenants"].([]any); len(ts) != 1 || ts[0].(map[string]any)["id"] != tenantA || own["total"] != 1.0 {
			t.Fatalf("a scoped token's list: %v, want only tenant a", own)
		}

		upd := map[string]any{"name": "Acme GmbH", "timeZone": "Europe/Vienna", "currency": "EUR"}
		api.expect(403, "", "PUT", "/api/v1/tenants/"+tenantA, "viewer-a", upd)
		got = api.expect(200, "", "PUT", "/api/v1/tenants/"+tenantA, "admin-a", upd)
		if got["name"] != "Acme GmbH" || got["createdAt"] != created["createdAt"] {
			t.Fatalf("updated: %v (created %v)", got, created)
		}
		api.expect(404, "id", "PUT", "/api/v1/tenants/"+tenantB, "admin-a", upd)
		// A tenant-scoped admin may not raise its own share of the workers;
		// giving its limits unchanged, or leaving them out, keeps them.
		api.expect(403, "limits", "PUT", "/api/v1/tenants/"+tenantA, "admin-a",
			map[string]any{"name": "Acme", "limits": map[string]any{"maxConcurrency": 4, "ratePerSecond": 1.5, "weight": 50}})
		same := api.expect(200, "", "PUT", "/api/v1/tenants/"+tenantA, "admin-a",
			map[string]any{"name": "Acme GmbH", "timeZone": "Europe/Vienna", "currency": "EUR", "limits": map[string]any{"maxConcurrency": 4, "ratePerSecond": 1.5, "weight": 2}})
		if l := same["limits"].(map[string]any); l["weight"] != 2.0 || l["maxConcurrency"] != 4.0 {
			t.Fatalf("limits after the scoped admin's updates: %v, want the ones given at creation", l)
		}
		if l := api.expect(200, "", "PUT", "/api/v1/tenants/"+tenantA, "admin", map[string]any{"name": "Acme GmbH", "limits": map[string]any{"weight": 7}})["limits"].(map[string]any); l["weight"] != 7.0 {
			t.Fatalf("a cross-tenant admin set limits %v, want weight 7", l)
		}
		api.expect(404, "id", "PUT", "/api/v1/tenants/nobody", "admin", upd)
		api.expect(400, "id", "PUT", "/api/v1/tenants/"+tenantA, "admin", map[string]any{"id": tenantB, "name": "x"})
		api.expect(422, "timeZone", "PUT", "/api/v1/tenants/"+tenantA, "admin", map[string]any{"name": "x", "timeZone": "Nowhere"})
		if got := api.expect(200, "", "GET", "/api/v1/tenants/"+tenantB, "admin", nil); got["name"] != "Bolt" {
			t.Fatalf("tenant b changed: %v", got)
		}
	})
}

func TestTenantPurgeAPI(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		api := newRegistryAPI(t, b)
		for _, tn := range []string{tenantA, tenantB} {
			for i, q := range []string{"invoices", "emails"} {
				if _, err := api.client.Add(ctx, q, worker.JobSpec{Type: "x", TenantID: tn}); err != nil {
					t.Fatal(err)
				}
				if _, err := api.client.Add(ctx, q, worker.JobSpec{Type: "x", TenantID: tn, Delay: time.Duration(1+i) * time.Hour}); err != nil {
					t.Fatal(err)
				}
			}
		}
		api.expect(403, "", "POST", "/api/v1/tenants/"+tenantA+"/purge", "admin-a", map[string]any{"dryRun": true})
		api.expect(403, "", "POST", "/api/v1/tenants/"+tenantB+"/purge", "operator", map[string]any{"dryRun": true})
		api.expect(422, "dryRun", "POST", "/api/v1/tenants/"+tenantA+"/purge", "admin", map[string]any{})
		api.expect(400, "id", "POST", "/api/v1/tenants/all/purge", "admin", map[string]any{"dryRun": true})
		dry := api.expect(200, "", "POST", "/api/v1/tenants/"+tenantA+"/purge", "admin", map[string]any{"dryRun": true})
		if jobs := dry["jobs"].(map[string]any); jobs["pending"] != 2.0 || jobs["scheduled"] != 2.0 || dry["dryRun"] != true {
			t.Fatalf("dry run: %v, want 2 pending and 2 scheduled", dry)
		}
		if n := count(t, api, tenantA); n != 4 {
			t.Fatalf("after the dry run tenant a has %d jobs, want 4", n)
		}
		res := api.expect(200, "", "POST", "/api/v1/tenants/"+tenantA+"/purge", "admin", map[string]any{"dryRun": false})
		if fmt.Sprint(res["jobs"]) != fmt.Sprint(dry["jobs"]) {
			t.Fatalf("purge removed %v, the dry run counted %v", res["jobs"], dry["jobs"])
		}
		if n := count(t, api, tenantA); n != 0 {
			t.Fatalf("after the purge tenant a has %d jobs", n)
		}
		if n := count(t, api, tenantB); n != 4 {
			t.Fatalf("after tenant a's purge tenant b has %d jobs, want 4", n)
		}
	})
}

// count counts tenant tn's scheduled and pending jobs over the queues.
func count(t *testing.T, api *registryAPI, tn string) int {
	t.Helper()
	c, err := api.client.Tenant(tn)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range []string{"invoices", "emails"} {
		s, err := c.Stats(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		n += int(s.Pending + s.Scheduled)
	}
	return n
}
