// Command invoice-workflow runs the seed's four-step invoice workflow
// (validate-invoice → calculate-totals → post-to-ledger → send-notifications)
// on a durable workflow engine and prints each run's steps.
//
//	go run ./examples/invoice-workflow                          # embedded SQLite store
//	REDIS_URL=redis://localhost:6379/2 go run ./examples/invoice-workflow
//
// The ledger is "unavailable" on the first try of one invoice, to show a
// step retrying by its own attempts and delay.
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
	"github.com/aibos/worker/workflow"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "aibos-invoice-workflow-")
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

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	engine, err := workflow.NewEngine(b, workflow.Config{Logger: logger})
	if err != nil {
		return err
	}
	var ledgerDown atomic.Bool
	ledgerDown.Store(true)
	procs := map[string]workflow.StepProcessorFunc{
		"InvoiceValidator": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			d["validation"] = map[string]any{"valid": d["invoiceId"] != nil}
			return d, nil
		},
		"InvoiceCalculator": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			d["totals"] = map[string]any{"subtotal": 100, "tax": 20, "total": 120}
			return d, nil
		},
		"LedgerPoster": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			if d["invoiceId"] == "inv_002" && ledgerDown.CompareAndSwap(true, false) {
				return nil, errors.New("ledger temporarily unavailable")
			}
			d["journalEntry"] = "je_" + fmt.Sprint(d["invoiceId"])
			return d, nil
		},
		"NotificationSender": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			d["notified"] = true
			return d, nil
		},
	}
	for name, p := range procs {
		if err := engine.RegisterStepProcessor(name, p); err != nil {
			return err
		}
	}
	err = engine.Register(workflow.Workflow{
		Name: "invoice.processing",
		Steps: []workflow.Step{
			{Name: "validate-invoice", Processor: "InvoiceValidator", RetryAttempts: 3, RetryDelay: time.Second},
			{Name: "calculate-totals", Processor: "InvoiceCalculator", RetryAttempts: 2, RetryDelay: 500 * time.Millisecond},
			{Name: "post-to-ledger", Processor: "LedgerPoster", RetryAttempts: 5, RetryDelay: 2 * time.Second},
			{Name: "send-notifications", Processor: "NotificationSender", RetryAttempts: 3, RetryDelay: time.Second},
		},
		OnSuccess: func(ctx context.Context, run *workflow.Run) error {
			fmt.Printf("onSuccess: run %s (tenant %s) succeeded\n", run.ID, run.TenantID)
			return nil
		},
		OnError: func(ctx context.Context, run *workflow.Run) error {
			fmt.Printf("onError: run %s failed at %s: %s\n", run.ID, run.FailedStep, run.Error)
			return nil
		},
	})
	if err != nil {
		return err
	}
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues: []worker.QueueConfig{{Name: engine.Queue()}}, Concurrency: 5, Logger: logger,
	})
	if err != nil {
		return err
	}
	if err := engine.Attach(m); err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Shutdown(context.Background())

	var ids []string
	for i, tenant := range []string{"tenant_123", "tenant_456"} {
		invoice := fmt.Sprintf("inv_%03d", i+1)
		run, err := engine.Execute(ctx, "invoice.processing",
			map[string]any{"invoiceId": invoice, "companyId": "company_1"},
			workflow.ExecuteOptions{TenantID: tenant, IdempotencyKey: invoice})
		if err != nil {
			return err
		}
		fmt.Printf("started run %s for %s (%s)\n", run.ID, invoice, tenant)
		ids = append(ids, run.ID)
	}
	for _, id := range ids {
		run, err := wait(ctx, engine, id)
		if err != nil {
			return err
		}
		if err := waitHook(ctx, b, run); err != nil {
			return err
		}
		fmt.Printf("run %s: %s\n", run.ID, run.State)
		for _, s := range run.Steps {
			fmt.Printf("  %-19s %-9s attempts=%d took=%v\n", s.Name, s.State, s.Attempts, s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond))
		}
		fmt.Printf("  output: %s\n", run.Steps[len(run.Steps)-1].Output)
	}
	return m.Shutdown(context.Background())
}

// waitHook waits until the run's OnSuccess or OnError job has run.
func waitHook(ctx context.Context, b broker.Broker, run *workflow.Run) error {
	hook := run.OnSuccess
	if run.State != workflow.StateSucceeded {
		hook = run.OnFailure
	}
	for hook != nil {
		j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: run.Queue, ID: hook.ID})
		if err == nil && j.State.Finished() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hook of run %s did not run: %w", run.ID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// wait polls a run until it has finished.
func wait(ctx context.Context, e *workflow.Engine, id string) (*workflow.Run, error) {
	for {
		run, err := e.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if run.State != workflow.StateRunning {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("run %s did not finish: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
