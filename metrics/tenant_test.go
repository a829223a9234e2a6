package metrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestTopTenants: with Config.TopTenants 2, the two tenants with the most
// waiting jobs of each queue get a series, every other waiting job (a
// third tenant's, a tenant not among the candidates, none) is summed under
// "other", and promtool-style linting finds nothing; with 0 the gauge is
// absent, so the label is opt-in.
func TestTopTenants(t *testing.T) {
	b := testbroker.SQLite(t)
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for tenant, n := range map[string]int{"acme": 4, "globex": 1, "initech": 3, "unlisted": 2, "": 1} {
		for i := range n {
			spec := worker.JobSpec{Type: "t", TenantID: tenant}
			if i == 0 {
				spec.Delay = time.Hour // scheduled jobs wait too
			}
			if _, err := c.Add(ctx, "invoices", spec); err != nil {
				t.Fatal(err)
			}
		}
	}
	candidates := func(context.Context) ([]string, error) { return []string{"acme", "globex", "initech", "idle"}, nil }
	m := metrics.New(metrics.Config{Broker: b, Queues: []string{"invoices"}, TopTenants: 2, Tenants: candidates})
	want := `
# HELP aibos_worker_queue_tenant_waiting_jobs Waiting (pending and scheduled) jobs of the tenants with the most in a queue (Config.TopTenants), the rest summed under tenant_id "other".
# TYPE aibos_worker_queue_tenant_waiting_jobs gauge
aibos_worker_queue_tenant_waiting_jobs{queue="invoices",tenant_id="acme"} 4
aibos_worker_queue_tenant_waiting_jobs{queue="invoices",tenant_id="initech"} 3
aibos_worker_queue_tenant_waiting_jobs{queue="invoices",tenant_id="other"} 4
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "aibos_worker_queue_tenant_waiting_jobs"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	if problems, err := testutil.GatherAndLint(reg, "aibos_worker_queue_tenant_waiting_jobs"); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	off := metrics.New(metrics.Config{Broker: b, Queues: []string{"invoices"}, Tenants: candidates})
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(off)
	if n, err := testutil.GatherAndCount(reg, "aibos_worker_queue_tenant_waiting_jobs"); err != nil || n != 0 {
		t.Errorf("without TopTenants: %d tenant series (%v), want none", n, err)
	}
}
