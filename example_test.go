package worker_test

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
)

// Invoice is the payload of the examples' "invoice.processing" jobs.
type Invoice struct {
	ID          string `json:"invoiceId"`
	AmountCents int    `json:"amountCents"`
}

// quiet keeps the Manager's own logs out of the examples' output.
var quiet = slog.New(slog.DiscardHandler)

// openStore opens an embedded SQLite store in a new temporary directory
// and returns it with a function that closes and removes it.
func openStore() (*sqlitebroker.Broker, func()) {
	dir, err := os.MkdirTemp("", "aibos-worker-example-")
	if err != nil {
		log.Fatal(err)
	}
	b, err := sqlitebroker.Open(filepath.Join(dir, "worker.db"), sqlitebroker.Config{})
	if err != nil {
		log.Fatal(err)
	}
	return b, func() {
		_ = b.Close()
		_ = os.RemoveAll(dir)
	}
}

// until returns an OnEvent hook that sends the events of the given kinds to
// the returned channel, and a function that waits for n of them.
func until(n int, kinds ...worker.EventKind) (func(worker.Event), func() []worker.Event) {
	ch := make(chan worker.Event, 64)
	hook := func(e worker.Event) {
		for _, k := range kinds {
			if e.Kind == k {
				ch <- e
			}
		}
	}
	wait := func() []worker.Event {
		var got []worker.Event
		timeout := time.After(5 * time.Second)
		for len(got) < n {
			select {
			case e := <-ch:
				got = append(got, e)
			case <-timeout:
				log.Fatalf("timed out waiting for %d events of kinds %v", n, kinds)
			}
		}
		return got
	}
	return hook, wait
}

// Add a job with a Client, process it with a Manager and read its result.
func Example() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()

	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Add(ctx, "invoices", worker.JobSpec{
		Type:      "invoice.processing",
		Data:      Invoice{ID: "inv_001", AmountCents: 10000},
		TenantID:  "tenant_123",
		CompanyID: "company_123",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added:", job.Type, job.State)

	onEvent, waitCompleted := until(1, worker.EventCompleted)
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:  []worker.QueueConfig{{Name: "invoices", Concurrency: 3}},
		Logger:  quiet,
		OnEvent: onEvent,
	})
	if err != nil {
		log.Fatal(err)
	}
	err = m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
		var inv Invoice
		if err := worker.Decode(job, &inv); err != nil {
			return worker.NoRetry(err) // a bad payload will not get better
		}
		fmt.Printf("processing %s for %s\n", inv.ID, job.TenantID)
		tax := inv.AmountCents / 5
		return worker.SetResult(ctx, map[string]any{"posted": true, "totalCents": inv.AmountCents + tax})
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	waitCompleted()
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}

	done, err := client.Get(ctx, "invoices", job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s after %d attempt(s): %s\n", done.State, done.Attempt, done.Result)
	// Output:
	// added: invoice.processing pending
	// processing inv_001 for tenant_123
	// completed after 1 attempt(s): {"posted":true,"totalCents":12000}
}

// Add jobs in bulk: all are stored or none is. A bad spec rejects the whole
// batch, and the *InvalidError names its index and field.
func ExampleClient_AddMany() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}

	var specs []worker.JobSpec
	for _, id := range []string{"inv_001", "inv_002", "inv_003"} {
		specs = append(specs, worker.JobSpec{Type: "invoice.processing", Data: Invoice{ID: id}, TenantID: "tenant_123"})
	}
	jobs, err := client.AddMany(ctx, "invoices", specs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("added", len(jobs), "jobs")

	bad := []worker.JobSpec{
		{Type: "invoice.processing", Data: Invoice{ID: "inv_004"}},
		{Data: Invoice{ID: "inv_005"}}, // no Type
	}
	_, err = client.AddMany(ctx, "invoices", bad)
	var invalid *worker.InvalidError
	if errors.As(err, &invalid) {
		fmt.Printf("rejected: index %d, field %s (ErrInvalidJob: %t)\n", invalid.Index, invalid.Field, errors.Is(err, worker.ErrInvalidJob))
	}

	n, err := client.Length(ctx, "invoices")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("waiting in the queue:", n)
	// Output:
	// added 3 jobs
	// rejected: index 1, field type (ErrInvalidJob: true)
	// waiting in the queue: 3
}

// A unique key rejects a second job while the first is unfinished. The
// *DuplicateError names the job that holds the key.
func ExampleDuplicateError() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}

	spec := worker.JobSpec{
		Type:      "report.generate",
		Data:      map[string]string{"month": "2024-06"},
		TenantID:  "tenant_123",
		UniqueKey: "report:tenant_123:2024-06",
	}
	first, err := client.Add(ctx, "reports", spec)
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Add(ctx, "reports", spec)
	fmt.Println("duplicate:", errors.Is(err, worker.ErrDuplicate))

	var dup *worker.DuplicateError
	if errors.As(err, &dup) {
		fmt.Println("held by the first job:", dup.ExistingID == first.ID)
		fmt.Println("unique key:", dup.UniqueKey)
	}
	// Output:
	// duplicate: true
	// held by the first job: true
	// unique key: report:tenant_123:2024-06
}

// NoRetry moves a job to dead at once, whatever attempts it has left: for
// errors a retry cannot fix.
func ExampleNoRetry() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	job, err := client.Add(ctx, "invoices", worker.JobSpec{
		Type:        "invoice.processing",
		Data:        Invoice{ID: "inv_001", AmountCents: -500},
		MaxAttempts: 3,
	})
	if err != nil {
		log.Fatal(err)
	}

	onEvent, waitDead := until(1, worker.EventDead)
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues:  []worker.QueueConfig{{Name: "invoices"}},
		Logger:  quiet,
		OnEvent: onEvent,
	})
	if err != nil {
		log.Fatal(err)
	}
	err = m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
		var inv Invoice
		if err := worker.Decode(job, &inv); err != nil {
			return worker.NoRetry(err)
		}
		if inv.AmountCents < 0 {
			return worker.NoRetry(fmt.Errorf("invoice %s has a negative amount", inv.ID))
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	ev := waitDead()[0]
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("event:", ev.Kind, "-", ev.Err)

	dead, err := client.Get(ctx, "invoices", job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s after attempt %d of %d\n", dead.State, dead.Attempt, dead.MaxAttempts)
	// Output:
	// event: dead - invoice inv_001 has a negative amount
	// dead after attempt 1 of 3
}

// Middleware wraps every processor; the first one given to Use is the
// outermost.
func ExampleManager_Use() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Add(ctx, "default", worker.JobSpec{Type: "email.send", TenantID: "tenant_123"}); err != nil {
		log.Fatal(err)
	}

	onEvent, waitCompleted := until(1, worker.EventCompleted)
	m, err := worker.NewManager(b, worker.ManagerConfig{Logger: quiet, OnEvent: onEvent})
	if err != nil {
		log.Fatal(err)
	}
	logging := func(next worker.Processor) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
			fmt.Println("log: start", job.Type)
			err := next.Process(ctx, job)
			fmt.Println("log: end", job.Type, "err:", err)
			return err
		})
	}
	requireTenant := func(next worker.Processor) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
			if job.TenantID == "" {
				return worker.NoRetry(errors.New("job has no tenant"))
			}
			fmt.Println("tenant: ok", job.TenantID)
			return next.Process(ctx, job)
		})
	}
	m.Use(logging, requireTenant)
	err = m.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
		fmt.Println("processor: sending email")
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	waitCompleted()
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// log: start email.send
	// tenant: ok tenant_123
	// processor: sending email
	// log: end email.send err: <nil>
}

// A client scoped to one tenant, as an API handler acting for that tenant
// would hold: another tenant's job does not exist for it, and its listings
// and counts hold only its own jobs.
func ExampleClient_Tenant() {
	b, done := openStore()
	defer done()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	acme, err := client.Tenant("acme")
	if err != nil {
		log.Fatal(err)
	}
	globex, _ := client.Tenant("globex")

	mine, _ := acme.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.processing"})
	theirs, _ := globex.Add(ctx, "invoices", worker.JobSpec{Type: "invoice.processing"})
	fmt.Println("job tenant:", mine.TenantID)

	_, err = acme.Cancel(ctx, "invoices", theirs.ID)
	fmt.Println("cancel another tenant's job, not found:", errors.Is(err, worker.ErrNotFound))

	page, _ := acme.List(ctx, worker.ListParams{Queue: "invoices", State: worker.StatePending})
	fmt.Println("acme lists its own job only:", len(page.Jobs) == 1 && page.Jobs[0].ID == mine.ID)

	st, _ := client.Stats(ctx, "invoices")
	mineSt, _ := acme.Stats(ctx, "invoices")
	fmt.Println("pending, all tenants:", st.Pending, "acme:", mineSt.Pending)
	// Output:
	// job tenant: acme
	// cancel another tenant's job, not found: true
	// acme lists its own job only: true
	// pending, all tenants: 2 acme: 1
}

// Priority means what the seed means: 1 is the most urgent. Across queues
// (here strictly, one job at a time) invoices (1) runs before payments (3)
// and reports (4); within a queue a job with priority 1 runs before one that
// sets none (3). A queue or a job can ask that its jobs be removed as soon
// as they complete instead of being kept for the retention.
func ExampleQueueConfig_priority() {
	b, cleanup := openStore()
	defer cleanup()
	ctx := context.Background()
	client, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	add := func(queue, name string, priority int) {
		if _, err := client.Add(ctx, queue, worker.JobSpec{Type: "work", Data: name, Priority: priority}); err != nil {
			log.Fatal(err)
		}
	}
	add("reports", "monthly report", 0)
	add("payments", "payment run", 0)
	add("invoices", "invoice inv_002", 0)
	add("invoices", "invoice inv_001 (urgent)", 1)

	onEvent, waitCompleted := until(4, worker.EventCompleted)
	m, err := worker.NewManager(b, worker.ManagerConfig{
		Queues: []worker.QueueConfig{
			{Name: "reports", Priority: 4, DeleteOnComplete: true},
			{Name: "payments", Priority: 3},
			{Name: "invoices", Priority: 1},
		},
		Concurrency:    1,
		StrictPriority: true,
		Logger:         quiet,
		OnEvent:        onEvent,
	})
	if err != nil {
		log.Fatal(err)
	}
	err = m.HandleFunc("work", func(ctx context.Context, job *worker.Job) error {
		var name string
		if err := worker.Decode(job, &name); err != nil {
			return err
		}
		fmt.Printf("%-9s priority %d: %s\n", job.Queue, job.Priority, name)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	waitCompleted()
	if err := m.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{"invoices", "payments", "reports"} {
		st, err := client.Stats(ctx, q)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d kept completed\n", q, st.Completed)
	}
	// Output:
	// invoices  priority 1: invoice inv_001 (urgent)
	// invoices  priority 3: invoice inv_002
	// payments  priority 3: payment run
	// reports   priority 3: monthly report
	// invoices: 2 kept completed
	// payments: 1 kept completed
	// reports: 0 kept completed
}
