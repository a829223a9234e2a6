package service

import (
	"context"
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
