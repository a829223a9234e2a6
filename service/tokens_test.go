package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"testing"

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
