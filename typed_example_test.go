package worker_test

import (
	"context"
	"fmt"
	"log"

	worker "github.com/aibos/worker"
)

// SendReminder is a typed job payload: its Kind is the job type.
type SendReminder struct {
	InvoiceID string `json:"invoiceId"`
	Days      int    `json:"days"`
}

// Kind names the job type of SendReminder jobs.
func (SendReminder) Kind() string { return "invoice.reminder" }

// Register binds a processor to a payload struct, and Add enqueues one:
// the job type is declared once, by the struct's Kind.
func ExampleRegister() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()

	onEvent, waitCompleted := until(1, worker.EventCompleted)
	m, err := worker.NewManager(b, worker.ManagerConfig{Logger: quiet, OnEvent: onEvent})
	if err != nil {
		log.Fatal(err)
	}
	err = worker.Register(m, func(ctx context.Context, job *worker.JobOf[SendReminder]) error {
		fmt.Printf("%s: remind about %s, %d days overdue\n", job.Type, job.Args.InvoiceID, job.Args.Days)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := worker.Add(ctx, client, "default", SendReminder{InvoiceID: "inv_042", Days: 14}, worker.JobSpec{TenantID: "tenant_123"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added:", job.Type, string(job.Data))

	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	waitCompleted()
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// added: invoice.reminder {"invoiceId":"inv_042","days":14}
	// invoice.reminder: remind about inv_042, 14 days overdue
}
