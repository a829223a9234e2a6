package admin_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/workerreg"
)

func TestWorkersAPI(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		api := newRegistryAPI(t, b)
		if got := api.expect(200, "", "GET", "/api/v1/workers", "viewer", nil); len(got["workers"].([]any)) != 0 {
			t.Fatalf("no worker runs, yet the list is %v", got)
		}
		m, err := worker.NewManager(b, worker.ManagerConfig{WorkerID: "w1", Concurrency: 3,
			Queues: []worker.QueueConfig{{Name: "invoices"}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		h, err := workerreg.Start(ctx, b, m, workerreg.Config{Interval: time.Minute, Version: "v9"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = h.Stop(ctx) }()
		got := api.expect(200, "", "GET", "/api/v1/workers", "viewer", nil)
		ws := got["workers"].([]any)
		if len(ws) != 1 {
			t.Fatalf("workers: %v, want w1", got)
		}
		if w := ws[0].(map[string]any); w["id"] != "w1" || w["concurrency"] != 3.0 || w["version"] != "v9" || w["gone"] != false {
			t.Fatalf("worker: %v", w)
		}
		api.expect(403, "", "GET", "/api/v1/workers", "viewer-a", nil)
		api.expect(401, "", "GET", "/api/v1/workers", "nope", nil)
	})
}
