package tenant_test

import (
	"context"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/tenant"
)

// TestFairPolicy: the registry's weights and concurrency caps become a
// queue's fair policy (2.5 per second becomes 3 per 1.2 s); tenants with
// the defaults are left out.
func TestFairPolicy(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		r, err := tenant.New(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range []*tenant.Tenant{
			{ID: "big", Name: "Big", Limits: tenant.Limits{Weight: 4, MaxConcurrency: 10}},
			{ID: "capped", Name: "Capped", Limits: tenant.Limits{MaxConcurrency: 2}},
			{ID: "plain", Name: "Plain"},
			{ID: "slow", Name: "Slow", Limits: tenant.Limits{RatePerSecond: 2.5}},
		} {
			if _, err := r.Create(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		p, err := r.FairPolicy(ctx, "reports")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]broker.TenantShare{"big": {Weight: 4, MaxActive: 10}, "capped": {Weight: 1, MaxActive: 2},
			"slow": {Weight: 1, Rate: broker.Rate{Limit: 3, Period: 1200 * time.Millisecond}}}
		if !p.Fair || p.Queue != "reports" || len(p.Tenants) != len(want) {
			t.Fatalf("FairPolicy = %+v; want fair, queue reports, tenants %v", p, want)
		}
		for tn, s := range want {
			if p.Tenants[tn] != s {
				t.Errorf("tenant %s: share %+v, want %+v", tn, p.Tenants[tn], s)
			}
		}
		if _, err := r.FairPolicy(ctx, "bad queue"); err == nil {
			t.Error("FairPolicy accepted an invalid queue name")
		}
	})
}
