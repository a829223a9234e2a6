package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/redisbroker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/metrics"
	"github.com/aibos/worker/retry"
)

func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m))
}

// scrape fetches url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: status %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want; ok is false if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		match := 0
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match != len(want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsScrapedAfterKnownJobs(t *testing.T) {
	b, err := redisbroker.New(redistest.Client(t), redisbroker.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}

	wm := metrics.New(metrics.Config{Broker: b, Queues: []string{"default", "backlog"}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(wm)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	t.Cleanup(srv.Close)

	m, err := worker.NewManager(b, worker.ManagerConfig{
		Concurrency: 4, PollInterval: 10 * time.Millisecond, MaintainInterval: 50 * time.Millisecond,
		Retry:  retry.Policy{BaseDelay: 10 * time.Millisecond, Multiplier: 2, MaxDelay: 20 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEvent: wm.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	wm.Attach(m)
	release := make(chan struct{})
	handlers := map[string]func(ctx context.Context, j *worker.Job) error{
		"ok": func(context.Context, *worker.Job) error { return nil },
		"flaky": func(_ context.Context, j *worker.Job) error {
			if j.Attempt == 1 {
				return errors.New("first try fails")
			}
			return nil
		},
		"doomed": func(context.Context, *worker.Job) error { return errors.New("always fails") },
		"poison": func(context.Context, *worker.Job) error { return worker.NoRetry(errors.New("malformed")) },
		"block": func(ctx context.Context, _ *worker.Job) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		},
	}
	for typ, h := range handlers {
		if err := m.HandleFunc(typ, h); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	// Two jobs waiting in a queue no Manager serves: the oldest-pending age
	// grows from the first one's insert.
	first, err := c.Add(ctx, "backlog", worker.JobSpec{Type: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, "backlog", worker.JobSpec{Type: "ok", Priority: 10}); err != nil {
		t.Fatal(err)
	}
	add := func(typ string, n, attempts int) {
		for range n {
			if _, err := c.Add(ctx, "default", worker.JobSpec{Type: typ, MaxAttempts: attempts}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("ok", 3, 3)
	add("flaky", 2, 3)
	add("doomed", 1, 2)
	add("poison", 1, 3)
	if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "ok", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	// 3 ok + 2×2 flaky + 2 doomed + 1 poison attempts.
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := wm.GetMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.JobsProcessed >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for 10 processed attempts: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One job that stays running: utilization is exactly 1 of 4.
	if _, err := c.Add(ctx, "default", worker.JobSpec{Type: "block"}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); m.Busy() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the blocking job did not start within 10s")
		}
	}

	fams := scrape(t, srv.URL)
	want := []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"aibos_worker_jobs_processed_total", map[string]string{"queue": "default", "type": "ok"}, 3},
		{"aibos_worker_jobs_completed_total", map[string]string{"queue": "default", "type": "ok"}, 3},
		{"aibos_worker_jobs_processed_total", map[string]string{"queue": "default", "type": "flaky"}, 4},
		{"aibos_worker_jobs_failed_total", map[string]string{"queue": "default", "type": "flaky"}, 2},
		{"aibos_worker_jobs_retried_total", map[string]string{"queue": "default", "type": "flaky"}, 2},
		{"aibos_worker_jobs_completed_total", map[string]string{"queue": "default", "type": "flaky"}, 2},
		{"aibos_worker_jobs_processed_total", map[string]string{"queue": "default", "type": "doomed"}, 2},
		{"aibos_worker_jobs_failed_total", map[string]string{"queue": "default", "type": "doomed"}, 2},
		{"aibos_worker_jobs_retried_total", map[string]string{"queue": "default", "type": "doomed"}, 1},
		{"aibos_worker_jobs_dead_total", map[string]string{"queue": "default", "type": "doomed"}, 1},
		{"aibos_worker_jobs_processed_total", map[string]string{"queue": "default", "type": "poison"}, 1},
		{"aibos_worker_jobs_failed_total", map[string]string{"queue": "default", "type": "poison"}, 1},
		{"aibos_worker_jobs_dead_total", map[string]string{"queue": "default", "type": "poison"}, 1},
		{"aibos_worker_job_processing_seconds", map[string]string{"queue": "default", "type": "flaky"}, 4},
		{"aibos_worker_job_processing_seconds", map[string]string{"queue": "default", "type": "doomed"}, 2},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "default", "state": "completed"}, 5},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "default", "state": "dead"}, 2},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "default", "state": "scheduled"}, 1},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "default", "state": "active"}, 1},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "default", "state": "pending"}, 0},
		{"aibos_worker_queue_jobs", map[string]string{"queue": "backlog", "state": "pending"}, 2},
		{"aibos_worker_queue_oldest_pending_age_seconds", map[string]string{"queue": "default"}, 0},
		{"aibos_worker_manager_busy", nil, 1},
		{"aibos_worker_manager_concurrency", nil, 4},
		{"aibos_worker_manager_utilization", nil, 0.25},
		{"aibos_worker_manager_stuck_processors", nil, 0},
		{"aibos_worker_broker_up", nil, 1},
	}
	for _, w := range want {
		got, ok := value(fams, w.name, w.labels)
		if !ok || got != w.v {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.v)
		}
	}
	for _, absent := range []struct {
		name, typ string
	}{{"aibos_worker_jobs_failed_total", "ok"}, {"aibos_worker_jobs_dead_total", "flaky"}, {"aibos_worker_jobs_retried_total", "poison"}} {
		if v, ok := value(fams, absent.name, map[string]string{"type": absent.typ}); ok && v != 0 {
			t.Errorf("%s{type=%s} = %v, want 0", absent.name, absent.typ, v)
		}
	}
	for _, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "tenant_id" {
					t.Errorf("%s has a tenant_id label by default", f.GetName())
				}
			}
		}
	}
	age, _ := value(fams, "aibos_worker_queue_oldest_pending_age_seconds", map[string]string{"queue": "backlog"})
	if maxAge := time.Since(first.CreatedAt).Seconds() + 1; age <= 0 || age > maxAge {
		t.Errorf("oldest pending age of backlog = %vs, want in (0, %v]", age, maxAge)
	}
	u, _ := value(fams, "aibos_worker_manager_utilization", nil)
	if u < 0 || u > 1 {
		t.Errorf("utilization %v outside [0, 1]", u)
	}

	s, err := wm.GetMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.JobsProcessed != 10 || s.JobsCompleted != 5 || s.JobsFailed != 5 || s.JobsRetried != 3 || s.JobsDead != 2 ||
		s.QueueLength != 3 || s.Busy != 1 || s.Concurrency != 4 || s.Utilization != 0.25 || s.AvgProcessingTime <= 0 || len(s.Queues) != 2 {
		t.Errorf("GetMetrics = %+v; want 10 processed, 5 completed, 5 failed, 3 retried, 2 dead, queue length 3, 1 of 4 busy", s)
	}
	close(release)
}
