package workflow_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/workflow"
)

// Register two step processors and a two-step workflow, execute a run on a
// Manager and print the run: each step's state, attempts and output.
func ExampleEngine() {
	dir, err := os.MkdirTemp("", "aibos-workflow-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := sqlitebroker.Open(filepath.Join(dir, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)

	engine, err := workflow.NewEngine(b, workflow.Config{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	err = engine.RegisterStepProcessor("InvoiceValidator", workflow.StepProcessorFunc(
		func(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
			data["valid"] = data["invoiceId"] != nil
			return data, nil
		}))
	if err != nil {
		log.Fatal(err)
	}
	err = engine.RegisterStepProcessor("LedgerPoster", workflow.StepProcessorFunc(
		func(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
			data["journalEntry"] = fmt.Sprint("je_", data["invoiceId"])
			return data, nil
		}))
	if err != nil {
		log.Fatal(err)
	}
	succeeded := make(chan string, 1)
	err = engine.Register(workflow.Workflow{
		Name: "invoice.posting",
		Steps: []workflow.Step{
			{Name: "validate-invoice", Processor: "InvoiceValidator", RetryAttempts: 3},
			{Name: "post-to-ledger", Processor: "LedgerPoster", RetryAttempts: 5, RetryDelay: time.Second},
		},
		OnSuccess: func(ctx context.Context, run *workflow.Run) error {
			succeeded <- run.ID
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	// The Manager must serve the engine's queue; Attach registers the
	// processors of the jobs that carry the steps.
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues: []worker.QueueConfig{{Name: engine.Queue()}},
		Logger: quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.Attach(m); err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}

	run, err := engine.Execute(ctx, "invoice.posting",
		map[string]any{"invoiceId": "inv_001", "amount": 120},
		workflow.ExecuteOptions{TenantID: "tenant_123"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("started:", run.Workflow, run.State)
	select {
	case id := <-succeeded:
		fmt.Println("onSuccess called for this run:", id == run.ID)
	case <-time.After(5 * time.Second):
		log.Fatal("timed out waiting for the run")
	}
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	run, err = engine.Get(ctx, run.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("run:", run.State, "tenant", run.TenantID)
	for _, s := range run.Steps {
		fmt.Printf("  %s: %s, attempts %d, output %s\n", s.Name, s.State, s.Attempts, s.Output)
	}
	// Output:
	// started: invoice.posting running
	// onSuccess called for this run: true
	// run: succeeded tenant tenant_123
	//   validate-invoice: completed, attempts 1, output {"amount":120,"invoiceId":"inv_001","valid":true}
	//   post-to-ledger: completed, attempts 1, output {"amount":120,"invoiceId":"inv_001","journalEntry":"je_inv_001","valid":true}
}
