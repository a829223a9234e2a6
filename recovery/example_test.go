package recovery_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/recovery"
)

// ledgerError knows its class: any error in a chain with an ErrorType
// method is classified by it.
type ledgerError struct{ table string }

func (e ledgerError) Error() string     { return "deadlock on " + e.table }
func (e ledgerError) ErrorType() string { return recovery.DatabaseError }

// Classify errors and see what the seed's default policy decides for each.
func ExamplePolicy_Decide() {
	p := recovery.DefaultPolicy()
	errs := []error{
		recovery.Classify(recovery.NetworkError, errors.New("bank API timed out")),
		fmt.Errorf("post journal entry: %w", ledgerError{table: "journal"}),
		recovery.Classify(recovery.BusinessLogicError, errors.New("invoice already paid")),
		errors.New("something unexpected"),
	}
	for _, err := range errs {
		d := p.Decide(err)
		class := d.Class
		if class == "" {
			class = "(none)"
		}
		fmt.Printf("%-18s matched=%-5t action=%-5s attempts=%d delay=%v notify=%t\n",
			class, d.Matched, d.Strategy.Action, d.Strategy.MaxAttempts, d.Strategy.Delay, d.Strategy.Notify)
	}
	// Output:
	// NetworkError       matched=true  action=retry attempts=10 delay=5s notify=false
	// DatabaseError      matched=true  action=retry attempts=5 delay=2s notify=false
	// BusinessLogicError matched=true  action=fail  attempts=0 delay=0s notify=true
	// (none)             matched=false action=retry attempts=0 delay=0s notify=false
}

// Classify tags an error with a class without changing its message;
// ErrorType finds the class anywhere in a chain.
func ExampleClassify() {
	err := recovery.Classify(recovery.ValidationError, errors.New("invoice has no lines"))
	wrapped := fmt.Errorf("validate invoice inv_001: %w", err)
	fmt.Println(wrapped)
	fmt.Println(recovery.ErrorType(wrapped))
	fmt.Println(recovery.ErrorType(errors.New("plain")) == "")
	// Output:
	// validate invoice inv_001: invoice has no lines
	// ValidationError
	// true
}

// Wire a Policy into a Manager: a business-logic error fails the job at once,
// though it has attempts left, and the Notifier hears of it.
func ExamplePolicy_manager() {
	dir, err := os.MkdirTemp("", "aibos-recovery-example-")
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

	notified := make(chan recovery.Notification, 1)
	policy := recovery.DefaultPolicy()
	policy.Notifier = recovery.NotifierFunc(func(ctx context.Context, n recovery.Notification) error {
		notified <- n
		return nil
	})
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:   []worker.QueueConfig{{Name: "payments"}},
		Recovery: policy,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	err = m.HandleFunc("payment.capture", func(ctx context.Context, job *worker.Job) error {
		return recovery.Classify(recovery.BusinessLogicError, errors.New("card expired"))
	})
	if err != nil {
		log.Fatal(err)
	}
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Add(ctx, "payments", worker.JobSpec{Type: "payment.capture", TenantID: "tenant_123", MaxAttempts: 5})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	var n recovery.Notification
	select {
	case n = <-notified:
	case <-time.After(5 * time.Second):
		log.Fatal("timed out waiting for the notification")
	}
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("notified: %s %s for %s: %s -> %s (this job: %t)\n", n.ErrorType, n.Action, n.TenantID, n.Error, n.State, n.JobID == job.ID)

	j, err := client.Get(ctx, "payments", job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("job %s after attempt %d of %d\n", j.State, j.Attempt, j.MaxAttempts)
	// Output:
	// notified: BusinessLogicError fail for tenant_123: card expired -> dead (this job: true)
	// job dead after attempt 1 of 5
}
