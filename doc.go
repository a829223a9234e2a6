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
//
// # Processors that misbehave
//
// A panic is a failed attempt with its stack. A processor that ignores its
// context cannot be stopped (Go has no way to kill a goroutine):
// AbandonGrace after its timeout (or a lost lease, or a cancel) the Manager
// ends its attempt without it, failed and retried per policy as asynq does,
// and the goroutine keeps its run slot until it returns, so concurrency
// stays bounded; Stuck counts such goroutines. River instead leaves the
// job running and logs; a slot held forever and a job that never ends were
// the two complaints that choice earns.
//
// A job that crashes its worker's process (os.Exit, a panic in a goroutine
// of its own, memory exhaustion) cannot be seen failing: the broker only
// sees the lease expire, exactly as when the worker is killed from outside
// (an OOM kill of a neighbour, a node lost, a deploy's SIGKILL). MaxCrashes
// quarantines a job whose lease expired that many times in a row (dead,
// with broker.QuarantineReason), and it is off by default: a count cannot
// tell a poison job from a healthy one whose workers kept dying under it,
// so any value is a trade-off. BullMQ fails a job stalled more than
// maxStalledCount times (default 1, so a single crash kills it), Sidekiq
// Pro's reliable fetch kills a job recovered 3 times, River counts a
// rescue as an attempt like any other. Two measures narrow the count's
// error. It counts only expiries in a row, so any ordinary outcome (a
// failure, a hand-back at shutdown) resets it. And from the second expiry
// in a row a recovered job waits a random delay under twice the lease
// before it runs again, instead of going back to its place: the jobs that
// died beside a poison job were recovered with it and would be fetched
// with it and die with it at every round; spread out, they run apart from
// it and complete. What remains is chance: in the fault suite's SIGKILL
// scenario (a worker of five killed every 5 s) about 34 in 10,000 healthy
// jobs died under 2 workers in a row, 3 under 3 and none under 4, which is
// why the service turns the rule on with 5 (WORKER_MAX_CRASHES) and the
// library leaves the choice to its user.
package worker
