// Command invoices is the quick start: it enqueues invoice jobs for two
// tenants and processes them, printing what happens.
//
//	go run ./examples/invoices                           # embedded SQLite store
//	REDIS_URL=redis://localhost:6379/2 go run ./examples/invoices
//
// One invoice fails on its first attempt to show a retry with backoff.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	_ "github.com/aibos/worker/broker/redisbroker"  // redis:// URLs
	_ "github.com/aibos/worker/broker/sqlitebroker" // the embedded store
	"github.com/aibos/worker/retry"
)

// Invoice is the payload of an "invoice.processing" job.
type Invoice struct {
	InvoiceID string  `json:"invoiceId"`
	Amount    float64 `json:"amount"`
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir, err := os.MkdirTemp("", "aibos-worker-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// REDIS_URL (e.g. redis://localhost:6379/2?prefix=aibos:worker) selects
	// Redis; without it the jobs live in an embedded store in dir.
	url, where := os.Getenv("REDIS_URL"), "redis"
	if url == "" {
		url, where = "sqlite:"+filepath.Join(dir, "worker.db"), "embedded sqlite store"
	}
	b, err := broker.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Println("broker:", where)

	queues := []worker.QueueConfig{
		{Name: "invoices", Priority: 1, Concurrency: 3},
		{Name: "payments", Priority: 3, Concurrency: 5},
	}
	client, err := worker.NewClient(b, worker.ClientConfig{Queues: []string{"invoices", "payments"}})
	if err != nil {
		return err
	}

	// Enqueue: three invoices for each of two tenants. The tenant is job
	// metadata, set by the enqueuer, not read from the payload.
	var specs []worker.JobSpec
	for i, tenant := range []string{"tenant_123", "tenant_456"} {
		for n := 1; n <= 3; n++ {
			specs = append(specs, worker.JobSpec{
				Type:        "invoice.processing",
				Data:        Invoice{InvoiceID: fmt.Sprintf("inv_%d%02d", i+1, n), Amount: float64(100 * n)},
				TenantID:    tenant,
				CompanyID:   "company_" + tenant[len("tenant_"):],
				Priority:    4 - n, // 1 is the most urgent: the largest invoice runs first
				MaxAttempts: 3,
			})
		}
	}
	jobs, err := client.AddMany(ctx, "invoices", specs)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		fmt.Printf("enqueued  %s  tenant=%s priority=%d\n", j.ID, j.TenantID, j.Priority)
	}

	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:      queues,
		Concurrency: 5,
		Retry:       retry.Policy{BaseDelay: 300 * time.Millisecond, Multiplier: 2, MaxDelay: 5 * time.Second},
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return err
	}
	var failedOnce atomic.Bool
	err = m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
		var inv Invoice
		if err := worker.Decode(job, &inv); err != nil {
			return worker.NoRetry(err)
		}
		fmt.Printf("processing invoice %s for tenant %s (attempt %d of %d)\n", inv.InvoiceID, job.TenantID, job.Attempt, job.MaxAttempts)
		if inv.InvoiceID == "inv_202" && failedOnce.CompareAndSwap(false, true) {
			return errors.New("ledger temporarily unavailable")
		}
		return worker.SetResult(ctx, map[string]any{"posted": true, "total": inv.Amount * 1.2})
	})
	if err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Shutdown(context.Background())

	for {
		s, err := client.Stats(ctx, "invoices")
		if err != nil {
			return err
		}
		if s.Completed == int64(len(jobs)) {
			fmt.Printf("done: %d completed, %d dead, %d retried once\n", s.Completed, s.Dead, boolToInt(failedOnce.Load()))
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jobs did not finish: %+v", *s)
		case <-time.After(100 * time.Millisecond):
		}
	}
	j, err := client.Get(ctx, "invoices", jobs[4].ID)
	if err != nil {
		return err
	}
	fmt.Printf("job %s: state=%s attempts=%d result=%s\n", j.ID, j.State, j.Attempt, j.Result)
	return m.Shutdown(context.Background())
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
