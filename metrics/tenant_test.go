package metrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/metrics"
)

// TestWaitingTenants: the tenants named in Config.WaitingTenants get their
// pending jobs per queue, others none; without the option the gauge is
// absent.
func TestWaitingTenants(t *testing.T) {
	b := testbroker.SQLite(t)
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for tenant, n := range map[string]int{"acme": 3, "globex": 1, "initech": 2} {
		for range n {
			if _, err := c.Add(context.Background(), "invoices", worker.JobSpec{Type: "t", TenantID: tenant}); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := metrics.New(metrics.Config{Broker: b, Queues: []string{"invoices"}, WaitingTenants: []string{"acme", "globex"}})
	want := `
# HELP aibos_worker_queue_tenant_pending_jobs Pending jobs of a tenant in a queue (Config.WaitingTenants only).
# TYPE aibos_worker_queue_tenant_pending_jobs gauge
aibos_worker_queue_tenant_pending_jobs{queue="invoices",tenant_id="acme"} 3
aibos_worker_queue_tenant_pending_jobs{queue="invoices",tenant_id="globex"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "aibos_worker_queue_tenant_pending_jobs"); err != nil {
		t.Error(err)
	}
	off := metrics.New(metrics.Config{Broker: b, Queues: []string{"invoices"}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(off)
	if n, err := testutil.GatherAndCount(reg, "aibos_worker_queue_tenant_pending_jobs"); err != nil || n != 0 {
		t.Errorf("without WaitingTenants: %d tenant series (%v), want none", n, err)
	}
}
