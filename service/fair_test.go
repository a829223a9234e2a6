package service

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/tenant"
)

// TestFairQueuesFromRegistry: the seed's accounting queues are fair unless
// the file says otherwise, other queues only when it says so, and a
// running service stores the tenants registry's weights and caps in each
// fair queue's policy.
func TestFairQueuesFromRegistry(t *testing.T) {
	ctx := context.Background()
	file := writeFile(t, "queues:\n  - {name: invoices, priority: 1}\n  - {name: bills, priority: 2, fair: false}\n"+
		"  - {name: custom, priority: 3}\n  - {name: exports, priority: 4, fair: true}\n")
	cfg, err := Load(LoadInput{File: file, LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"invoices": true, "bills": false, "custom": false, "exports": true}
	for _, q := range cfg.Queues {
		if q.Fair != want[q.Name] {
			t.Errorf("queue %s: fair %v, want %v", q.Name, q.Fair, want[q.Name])
		}
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := tenant.New(svc.store.b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, &tenant.Tenant{ID: "acme", Name: "Acme", Limits: tenant.Limits{Weight: 4, MaxConcurrency: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(ctx)
	fb := svc.store.b.(broker.FairBroker)
	for q, fair := range want {
		testwait.For(t, 10*time.Second, "queue "+q+"'s policy", func() bool {
			p, err := fb.QueueFairGet(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !fair {
				return !p.Fair && len(p.Tenants) == 0
			}
			return p.Fair && p.Tenants["acme"] == broker.TenantShare{Weight: 4, MaxActive: 7}
		})
	}
}
