package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
)

// TestAPIServedWithStoredTokens: serve mounts the API, which accepts a
// token made offline in the store and refuses requests without one; with
// WORKER_API_ENABLED=false it is not served.
func TestAPIServedWithStoredTokens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		enabled          string
		withToken, noTok int
	}{{"true", http.StatusOK, http.StatusUnauthorized}, {"false", http.StatusNotFound, http.StatusNotFound}} {
		cfg, err := Load(LoadInput{LookupEnv: env("WORKER_DATA_DIR="+dir, "WORKER_HTTP_ADDR=127.0.0.1:0", "WORKER_API_ENABLED="+tc.enabled)})
		if err != nil {
			t.Fatal(err)
		}
		// Offline, as `aibos-worker tokens create` does before the first start.
		ts, closeStore, err := OpenTokens(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		token, _, err := ts.Create(ctx, admin.TokenSpec{Name: "first-admin", Role: admin.RoleAdmin})
		if cerr := closeStore(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// While the service runs, the embedded store is locked: say so.
		if _, _, err := OpenTokens(ctx, cfg); !errors.Is(err, ErrServiceRunning) {
			t.Errorf("OpenTokens while serving: %v, want ErrServiceRunning", err)
		}
		url := "http://" + svc.Addr().String() + "/api/v1/tokens"
		if got, _ := request(t, "GET", url, token, ""); got != tc.withToken {
			t.Errorf("WORKER_API_ENABLED=%s: GET /api/v1/tokens with the offline token = %d, want %d", tc.enabled, got, tc.withToken)
		}
		if got, _ := request(t, "GET", url, "", ""); got != tc.noTok {
			t.Errorf("WORKER_API_ENABLED=%s: GET /api/v1/tokens without a token = %d, want %d", tc.enabled, got, tc.noTok)
		}
		if err := svc.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegistriesWired: a started service is in the API's worker registry
// at once and leaves it on a clean stop; the jobs it ran are in the
// per-minute series, flushed at the stop, which the next process shows.
func TestRegistriesWired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := Load(LoadInput{LookupEnv: env("WORKER_DATA_DIR="+dir, "WORKER_HTTP_ADDR=127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	ts, closeStore, err := OpenTokens(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := ts.Create(ctx, admin.TokenSpec{Name: "viewer", Role: admin.RoleViewer})
	if cerr := closeStore(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	start := func() *Service {
		svc, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan struct{}, 1)
		if err := svc.Register("invoices", worker.ProcessorFunc(func(context.Context, *worker.Job) error { ran <- struct{}{}; return nil })); err != nil {
			t.Fatal(err)
		}
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Client().Add(ctx, "invoices", worker.JobSpec{Type: "invoices"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Fatal("the job did not run")
		}
		return svc
	}
	workers := func(svc *Service) []any {
		status, body := request(t, "GET", "http://"+svc.Addr().String()+"/api/v1/workers", token, "")
		if status != http.StatusOK {
			t.Fatalf("GET /api/v1/workers: %d %v", status, body)
		}
		l, _ := body["workers"].([]any)
		return l
	}
	svc := start()
	first := svc.Manager().ID()
	if l := workers(svc); len(l) != 1 || l[0].(map[string]any)["id"] != first {
		t.Errorf("workers while one service runs: %v, want it alone", l)
	}
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	svc = start()
	defer svc.Shutdown(ctx)
	if l := workers(svc); len(l) != 1 || l[0].(map[string]any)["id"] == first {
		t.Errorf("workers after a clean stop and a new start: %v, want the new one alone", l)
	}
	status, body := request(t, "GET", "http://"+svc.Addr().String()+"/api/v1/series?queue=invoices", token, "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/series: %d %v", status, body)
	}
	var completed float64
	for _, q := range body["series"].([]any) {
		for _, m := range q.(map[string]any)["minutes"].([]any) {
			completed += m.(map[string]any)["completed"].(float64)
		}
	}
	if completed < 1 {
		t.Errorf("series of invoices after the first service ran a job and stopped: %v, want a completed job", body)
	}
}
