package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/promtooltest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/tenant"
	"github.com/aibos/worker/workflow"
)

// TestMetricsAfterKnownMix runs a known mix through a service (two HTTP
// job calls, one answered 503 then 200; a workflow that succeeds and one
// that fails and is compensated; a cron schedule ticking every second)
// and checks every metric the service added for them in one scrape, which
// promtool check metrics must also accept.
func TestMetricsAfterKnownMix(t *testing.T) {
	ctx := context.Background()
	var calls atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()
	file := writeFile(t, "queues: [{name: invoices}]\njob_types:\n"+
		"  invoice.sync: {http: {url: '"+app.URL+"/sync', secret: whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}}\n"+
		"  invoice.idle: {processor: noop}\n"+
		"schedules:\n  - {name: heartbeat, cron: '@every 1s', job: {queue: invoices, type: noop}}\n")
	cfg, err := Load(LoadInput{File: file, LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_RETRY_DELAY=10")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(ctx)
	var ticks atomic.Int32
	if err := svc.Register("noop", worker.ProcessorFunc(func(context.Context, *worker.Job) error { ticks.Add(1); return nil })); err != nil {
		t.Fatal(err)
	}
	registerWorkflows(t, svc)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	job, err := svc.Client().Add(ctx, "invoices", worker.JobSpec{Type: "invoice.sync"})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := svc.Workflows().Execute(ctx, "ok", nil, workflow.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := svc.Workflows().Execute(ctx, "bad", nil, workflow.ExecuteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the job, both runs and a cron tick to finish", func() bool {
		j, err := svc.Client().Get(ctx, "invoices", job.ID)
		if err != nil || j.State != worker.StateCompleted || ticks.Load() == 0 {
			return false
		}
		o, err1 := svc.Workflows().Get(ctx, ok.ID)
		b, err2 := svc.Workflows().Get(ctx, bad.ID)
		return err1 == nil && err2 == nil && o.State == workflow.StateSucceeded && b.State == workflow.StateFailed &&
			b.Step("charge").CompensationState == "" && b.Step("reserve").CompensationState == "completed"
	})
	// The compensated outcome is counted when the compensation's completion
	// commits, which the run's state shows just before the event is seen.
	base := "http://" + svc.Addr().String()
	var fams map[string]*dto.MetricFamily
	testwait.For(t, 10*time.Second, "the compensation to be counted", func() bool {
		fams = scrape(t, base+"/metrics")
		v, _ := metricValue(fams, "aibos_worker_workflow_runs_compensated_total", "workflow", "bad")
		return v == 1
	})
	host := strings.TrimPrefix(app.URL, "http://")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"aibos_worker_workflow_runs_started_total", []string{"workflow", "ok"}, 1},
		{"aibos_worker_workflow_runs_succeeded_total", []string{"workflow", "ok"}, 1},
		{"aibos_worker_workflow_runs_failed_total", []string{"workflow", "ok"}, 0},
		{"aibos_worker_workflow_runs_started_total", []string{"workflow", "bad"}, 1},
		{"aibos_worker_workflow_runs_failed_total", []string{"workflow", "bad"}, 1},
		{"aibos_worker_workflow_runs_succeeded_total", []string{"workflow", "bad"}, 0},
		{"aibos_worker_workflow_step_seconds", []string{"workflow", "ok", "step", "a", "outcome", "completed"}, 1},
		{"aibos_worker_workflow_step_seconds", []string{"workflow", "ok", "step", "c", "outcome", "completed"}, 1},
		{"aibos_worker_workflow_step_seconds", []string{"workflow", "bad", "step", "charge", "outcome", "failed"}, 1},
		{"aibos_worker_workflow_step_seconds", []string{"workflow", "bad", "step", "reserve", "outcome", "compensated"}, 1},
		{"aibos_worker_endpoint_calls_total", []string{"endpoint", "invoice.sync", "instance", host, "code", "5xx"}, 1},
		{"aibos_worker_endpoint_calls_total", []string{"endpoint", "invoice.sync", "instance", host, "code", "2xx"}, 1},
		{"aibos_worker_cron_ticks_missed_total", []string{"schedule", "heartbeat"}, 0},
		// Configured types start at zero on every served queue.
		{"aibos_worker_jobs_completed_total", []string{"queue", "invoices", "type", "invoice.idle"}, 0},
		{"aibos_worker_jobs_retried_total", []string{"queue", "invoices", "type", "invoice.sync"}, 1},
		{"aibos_worker_build_info", nil, 1},
	} {
		got, found := metricValue(fams, c.name, c.labels...)
		if !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
	// A tick's counters move one after another: the cron metrics are
	// read until one scrape shows the last tick's counters all moved.
	testwait.For(t, 30*time.Second, "a scrape with as many late-seconds observations as claimed cron ticks", func() bool {
		cf := scrape(t, base+"/metrics")
		claimed, _ := metricValue(cf, "aibos_worker_cron_ticks_claimed_total", "schedule", "heartbeat", "status", "ok")
		late, _ := metricValue(cf, "aibos_worker_cron_tick_late_seconds", "schedule", "heartbeat")
		return claimed >= 1 && late == claimed
	})
	for _, gone := range []string{"aibos_worker_worker_busy", "aibos_worker_worker_concurrency", "aibos_worker_worker_utilization"} {
		if fams[gone] != nil {
			t.Errorf("/metrics still has %s (renamed aibos_worker_manager_*)", gone)
		}
	}
	for _, name := range []string{"aibos_worker_manager_busy", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	promtoolCheckMetrics(t, fetch(t, base+"/metrics"))
}

// registerWorkflows registers "ok" (steps a, b, c) and "bad" (reserve,
// compensated, then charge, which fails at once).
func registerWorkflows(t *testing.T, svc *Service) {
	t.Helper()
	e := svc.Workflows()
	okStep := workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
		return workflow.Data{}, nil
	})
	failStep := workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
		return nil, errors.New("card declined")
	})
	for name, p := range map[string]workflow.StepProcessor{"ok": okStep, "fail": failStep} {
		if err := e.RegisterStepProcessor(name, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []workflow.Workflow{
		{Name: "ok", Steps: []workflow.Step{{Name: "a", Processor: "ok"}, {Name: "b", Processor: "ok"}, {Name: "c", Processor: "ok"}}},
		{Name: "bad", Steps: []workflow.Step{{Name: "reserve", Processor: "ok", Compensation: "ok"},
			{Name: "charge", Processor: "fail", RetryAttempts: 1}}},
	} {
		if err := svc.RegisterWorkflow(w); err != nil {
			t.Fatal(err)
		}
	}
}

func scrape(t *testing.T, u string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(fetch(t, u)))
	if err != nil {
		t.Fatalf("parse %s: %v", u, err)
	}
	return fams
}

// metricValue returns the value (a histogram's count) of the series of
// name with the label pairs given.
func metricValue(fams map[string]*dto.MetricFamily, name string, pairs ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(pairs); i += 2 {
			match = match && have[pairs[i]] == pairs[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// promtoolCheckMetrics runs promtool check metrics on a scrape: it must
// report nothing.
func promtoolCheckMetrics(t *testing.T, body string) {
	t.Helper()
	cmd := exec.Command(promtooltest.Path(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestTracesExportedOverOTLP runs a service with OTEL_TRACES_EXPORTER=otlp
// against a real OTLP/HTTP receiver: a job added through the service's
// client arrives there as a producer span and a consumer span of one
// trace, sent at the latest by Shutdown's flush.
func TestTracesExportedOverOTLP(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var spans []*tracepb.Span
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer receiver.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	cfg, err := Load(LoadInput{LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "OTEL_TRACES_EXPORTER=otlp")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	if err := svc.Register("invoice.processing", worker.ProcessorFunc(func(context.Context, *worker.Job) error { close(done); return nil })); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	job, err := svc.Client().Add(ctx, "invoices", worker.JobSpec{Type: "invoice.processing"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not run")
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, s := range spans {
		byName[s.GetName()] = s
	}
	p, c := byName["send invoices"], byName["process invoices"]
	if p == nil || c == nil {
		t.Fatalf("the receiver got spans %v, want send invoices and process invoices", slices.Collect(maps.Keys(byName)))
	}
	if !bytes.Equal(c.GetParentSpanId(), p.GetSpanId()) || !bytes.Equal(c.GetTraceId(), p.GetTraceId()) {
		t.Errorf("the consumer span is not the producer span's child")
	}
	var id string
	for _, a := range c.GetAttributes() {
		if a.GetKey() == "messaging.message.id" {
			id = a.GetValue().GetStringValue()
		}
	}
	if id != job.ID {
		t.Errorf("consumer span's messaging.message.id %q, want %q", id, job.ID)
	}
}

// TestMetricsTenantTop: WORKER_METRICS_TENANT_TOP=1 labels the registered
// tenant with the most waiting jobs of each queue on /metrics, sums the
// rest as "other", and promtool finds the scrape clean.
func TestMetricsTenantTop(t *testing.T) {
	svc, _ := startService(t, "WORKER_DATA_DIR="+t.TempDir(), "WORKER_METRICS_TENANT_TOP=1", "WORKER_ENCRYPTED_QUEUES=none")
	ctx := context.Background()
	reg, err := tenant.New(svc.Broker())
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range map[string]int{"acme": 3, "globex": 2} {
		if _, err := reg.Create(ctx, &tenant.Tenant{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := svc.Client().Add(ctx, "reports", worker.JobSpec{Type: "t", TenantID: id, Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
	}
	body := fetch(t, "http://"+svc.Addr().String()+"/metrics")
	for _, want := range []string{
		`aibos_worker_queue_tenant_waiting_jobs{queue="reports",tenant_id="acme"} 3`,
		`aibos_worker_queue_tenant_waiting_jobs{queue="reports",tenant_id="other"} 2`,
		`aibos_worker_queue_tenant_waiting_jobs{queue="invoices",tenant_id="other"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no line %s", want)
		}
	}
	if strings.Contains(body, `tenant_id="globex"`) {
		t.Error("/metrics labels globex, beyond the top 1")
	}
	promtoolCheckMetrics(t, body)
}
