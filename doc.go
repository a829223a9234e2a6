// Package worker is the background-job system of AI-BOS: the Go form of the
// @aibos/worker service (DOC-300).
//
// Application code adds jobs with a Client; worker processes run a Manager
// that leases jobs from a broker, runs the registered Processor for each
// job's type, retries failures with exponential backoff and jitter, and
// records the outcome. Delivery is at least once: a leased job whose worker
// dies is recovered when its lease expires, and a stale worker's report is
// rejected by the lease's fencing token.
//
// Storage sits behind package broker. Two engines implement it:
// broker/redisbroker (Redis, the distributed engine) and broker/sqlitebroker
// (embedded SQLite, the zero-setup default).
//
//	b, _ := redisbroker.Open("redis://localhost:6379/2", redisbroker.Config{})
//	client, _ := worker.NewClient(b, worker.ClientConfig{})
//	client.Add(ctx, "invoices", worker.JobSpec{
//		Type:     "invoice.processing",
//		Data:     map[string]string{"invoiceId": "inv_001"},
//		TenantID: "tenant_123",
//	})
//
//	m, _ := worker.NewManager(b, worker.ManagerConfig{
//		Queues: []worker.QueueConfig{{Name: "invoices", Priority: 1, Concurrency: 3}},
//	})
//	m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
//		return nil
//	})
//	m.Run(ctx) // until ctx is cancelled, then a graceful shutdown
//
// A payload struct can name its own job type (Args), so that the type and
// the payload's shape are declared once: Register binds a processor to it
// and Add enqueues it (see ExampleRegister).
//
// Inside, a Manager composes small components, each started by Start and
// stopped by Shutdown: a fetcher that leases what can run now, an executor
// that runs each job on its own copy, an acknowledger that writes
// completions in batches, a heartbeat that extends leases, and queue
// maintenance, which runs on one elected Manager per queue when the broker
// can elect (broker.LeaderStore).
package worker
