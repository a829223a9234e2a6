package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testwait"
)

// TestGoProcessorBoundByFile runs a Service in-process: a Go processor
// registered under its own name also serves the job type the file binds
// to it, and jobs added through the service's client run.
func TestGoProcessorBoundByFile(t *testing.T) {
	ctx := context.Background()
	file := writeFile(t, "queues: [{name: invoices, priority: 1}]\njob_types:\n  invoice.reminder: {processor: invoices}\n")
	cfg, err := Load(LoadInput{File: file, LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 2)
	p := worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error { ran <- job.Type; return nil })
	if err := svc.Register("invoices", p); err != nil {
		t.Fatal(err)
	}
	if err := svc.Register("invoices", p); err == nil {
		t.Error("registering a name twice succeeded")
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(ctx)
	if err := svc.Register("late", p); err == nil {
		t.Error("Register after Start succeeded")
	}
	for _, typ := range []string{"invoices", "invoice.reminder"} {
		if _, err := svc.Client().Add(ctx, "invoices", worker.JobSpec{Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case typ := <-ran:
			got[typ] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("jobs run: %v; want invoices and invoice.reminder", got)
		}
	}
	resp, err := http.Get("http://" + svc.Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health = %d, want 200", resp.StatusCode)
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestNewRejectsBadConfig: a Config built in Go is checked like a loaded
// one, and nothing is opened.
func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(context.Background(), nil, nil); err == nil {
		t.Error("New(nil config) succeeded")
	}
	dir := filepath.Join(t.TempDir(), "data")
	c := Default()
	c.DataDir, c.MetricsInterval = dir, 0
	_, err := New(context.Background(), c, nil)
	if !IsConfigError(err) || !strings.Contains(err.Error(), "METRICS_INTERVAL") {
		t.Errorf("MetricsInterval 0: %v, want a config error naming METRICS_INTERVAL", err)
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("data directory exists after a config error (%v): something was opened", serr)
	}
}

// TestMonitoringEnabled: /metrics is served only with MONITORING_ENABLED.
func TestMonitoringEnabled(t *testing.T) {
	for _, tc := range []struct {
		enabled string
		want    int
	}{{"true", http.StatusOK}, {"false", http.StatusNotFound}} {
		cfg, err := Load(LoadInput{LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "MONITORING_ENABLED="+tc.enabled)})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + svc.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("MONITORING_ENABLED=%s: /metrics = %d, want %d", tc.enabled, resp.StatusCode, tc.want)
		}
		if err := svc.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScalerAndHealthWired: with scaling enabled the scaler runs and its
// metrics are served; /health reports each queue's length as a warning
// beside the critical broker check.
func TestScalerAndHealthWired(t *testing.T) {
	ctx := context.Background()
	file := writeFile(t, "scaling: {enabled: true, min_workers: 2, max_workers: 4}\n")
	cfg, err := Load(LoadInput{File: file, LookupEnv: env("WORKER_DATA_DIR="+t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_CONCURRENCY=8", "HEALTH_CHECK_INTERVAL=50")})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown(ctx)
	// Start brings the concurrency within the scaler's bounds at once.
	if n := svc.Manager().Concurrency(); n != 4 {
		t.Errorf("concurrency %d after start, want 4 (WORKER_CONCURRENCY 8 bounded by max_workers 4)", n)
	}
	// HEALTH_CHECK_INTERVAL drives the background checks.
	// HEALTH_CHECK_INTERVAL (50 ms here, 30 s by default) drives the
	// background checks: a second report follows the first.
	var first time.Time
	testwait.For(t, 10*time.Second, "two background health reports", func() bool {
		rep, ok := svc.checker.Latest()
		if first.IsZero() && ok {
			first = rep.CheckedAt
		}
		return ok && rep.CheckedAt.After(first)
	})
	base := "http://" + svc.Addr().String()
	body := fetch(t, base+"/metrics")
	if !strings.Contains(body, "aibos_worker_scaler_desired_concurrency") {
		t.Error("/metrics has no scaler metrics")
	}
	var rep struct {
		Status string
		Checks []struct {
			Name     string
			Critical bool
		}
	}
	if err := json.Unmarshal([]byte(fetch(t, base+"/health")), &rep); err != nil {
		t.Fatal(err)
	}
	crit := map[string]bool{}
	for _, c := range rep.Checks {
		crit[c.Name] = c.Critical
	}
	if rep.Status != "healthy" || !crit["broker"] || crit["queue:invoices"] {
		t.Errorf("/health = %+v, want healthy with a critical broker check and a warning on queue:invoices", rep)
	}
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
