package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/promtooltest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/metrics"
)

// TestTenantLabelLimit runs jobs of five tenants (and some of none) through
// a Manager with TenantLabelLimit 2: two tenants get a tenant_id series of
// their own, everything else counts under "other", no attempt is lost,
// and promtool finds nothing wrong with the exposition.
func TestTenantLabelLimit(t *testing.T) {
	b := testbroker.SQLite(t)
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	wm := metrics.New(metrics.Config{Broker: b, Queues: []string{"default"}, TenantLabelLimit: 2})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(wm)
	m, err := worker.NewManager(b, worker.ManagerConfig{
		PollInterval: 10 * time.Millisecond, OnEvent: wm.Observe,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	wm.Attach(m)
	if err := m.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const total = 12
	for i := range total {
		tenant := ""
		if i%6 != 5 {
			tenant = fmt.Sprintf("tenant-%d", i%6)
		}
		if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "ok", TenantID: tenant}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	completed := func() map[string]float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		byTenant := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "aibos_worker_jobs_completed_total" {
				continue
			}
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "tenant_id" {
						byTenant[l.GetValue()] += s.GetCounter().GetValue()
					}
				}
			}
		}
		return byTenant
	}
	testwait.Progress(t, 30*time.Second, "jobs counted", total, func() int {
		n := 0.0
		for _, v := range completed() {
			n += v
		}
		return int(n)
	})
	got := completed()
	if len(got) != 3 || got[metrics.OtherTenants] == 0 {
		t.Fatalf("completed by tenant_id %v: want two tenants of their own and %q", got, metrics.OtherTenants)
	}
	for tenant, n := range got {
		if tenant != metrics.OtherTenants && n != 2 {
			t.Errorf("tenant %s has %v completed attempts counted, want its 2", tenant, n)
		}
	}
	if got[metrics.OtherTenants] != total-4 {
		t.Errorf("%q counted %v attempts, want the other %d", metrics.OtherTenants, got[metrics.OtherTenants], total-4)
	}
	checkExposition(t, reg)
}

// TestTenantLabelLimitBoundsSeries: 100,000 tenants finishing attempts make
// at most TenantLabelLimit+1 series per counter, queue and type.
func TestTenantLabelLimitBoundsSeries(t *testing.T) {
	const limit = 10
	wm := metrics.New(metrics.Config{TenantLabelLimit: limit})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(wm)
	for i := range 100_000 {
		job := &worker.Job{ID: fmt.Sprint(i), Queue: "invoices", Type: "invoice.processing", TenantID: fmt.Sprintf("t%06d", i)}
		wm.Observe(worker.Event{Kind: worker.EventCompleted, Job: job, Duration: time.Millisecond})
	}
	for _, name := range []string{"aibos_worker_jobs_completed_total", "aibos_worker_jobs_processed_total"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != limit+1 {
			t.Errorf("%s: %d series (%v) for 100,000 tenants, want %d", name, n, err, limit+1)
		}
	}
	checkExposition(t, reg)
}

// checkExposition runs promtool check metrics on reg's text exposition.
func checkExposition(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var body bytes.Buffer
	enc := expfmt.NewEncoder(&body, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatalf("encode %s: %v", f.GetName(), err)
		}
	}
	cmd := exec.Command(promtooltest.Path(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(body.String())
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
