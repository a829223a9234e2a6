package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/acknowledger"
	"github.com/aibos/worker/internal/heartbeat"
	"github.com/aibos/worker/internal/maintenance"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/retry"
)

// QueueConfig configures one queue a Manager serves: the seed's
// {name, priority, concurrency}.
type QueueConfig struct {
	// Name of the queue. Required.
	Name string
	// Priority ranks the queue against the others as the seed means it: 1
	// is the most urgent, in [broker.MinPriority, broker.MaxPriority]. With
	// weighted scheduling (the default) each queue has the weight
	// max + 1 - Priority, where max is the largest Priority among the
	// Manager's queues, and is polled first with probability proportional
	// to its weight: the seed's invoices 1, bills 2, payments 3, reports 4
	// get 4:3:2:1. With StrictPriority lower numbers are always drained
	// first. Defaults to broker.DefaultPriority (3), the middle of the
	// seed's 1..4.
	Priority int
	// Concurrency caps how many of this queue's jobs run at once in this
	// Manager; the Manager's Concurrency caps it in turn, also after
	// SetConcurrency. Defaults to the Manager's Concurrency, following it
	// when SetConcurrency changes it.
	Concurrency int
	// DeleteOnComplete removes each job of the queue whole as soon as it
	// completes (asynq's Retention 0, BullMQ's removeOnComplete), instead
	// of keeping it completed for the Manager's retention. A job can ask
	// for it alone with JobSpec.DeleteOnComplete. Jobs finished through a
	// Finisher (workflow steps) are left to it. Defaults to false.
	DeleteOnComplete bool
	// Fair serves the queue's tenants in turn within each priority,
	// weighted, instead of FIFO (broker.FairPolicy has the model), so a
	// tenant that enqueues a large backlog does not make the others wait
	// behind it. It is stored in the broker, so every worker applies it:
	// Start turns it on there, keeping the tenants' stored weights and caps
	// (package tenant's Registry.FairPolicy makes those); turning it off
	// again is Client.SetFairPolicy's job, so that a Manager started without
	// it never undoes it for the others. The broker must implement
	// broker.FairBroker (both brokers of this module do). Defaults to false.
	Fair bool
	// MaxCrashes quarantines a job of this queue whose worker died under
	// it (its lease expired) this many times in a row: it goes to dead
	// with the reason, whatever attempts it has left
	// (broker.QueueMaintainParams.MaxCrashes has the rule). 0 takes the
	// Manager's MaxCrashes; -1 turns the rule off for this queue. At most
	// broker.MaxAttemptHistory.
	MaxCrashes int
}

// ManagerConfig configures a Manager. The zero value works: it serves the
// "default" queue with the seed's defaults.
type ManagerConfig struct {
	// Queues to serve. Defaults to one queue named "default".
	Queues []QueueConfig
	// Concurrency is the most jobs run at once over all queues. Defaults to
	// 5 (the seed's WORKER_CONCURRENCY).
	Concurrency int
	// StrictPriority always polls the queues in priority order (1 first),
	// so a less urgent queue runs only while the more urgent ones are empty,
	// instead of weighting them.
	StrictPriority bool
	// Retry is the backoff between attempts. Its MaxAttempts is not used
	// here: each job carries its own. Defaults to retry.DefaultPolicy().
	Retry retry.Policy
	// Timeout bounds one attempt of a job that sets no timeout of its own.
	// Defaults to 5m (the seed's WORKER_TIMEOUT).
	Timeout time.Duration
	// LeaseDuration is how long a fetched job stays leased without a
	// heartbeat. Defaults to 30s.
	LeaseDuration time.Duration
	// HeartbeatInterval is how often running jobs' leases are extended.
	// Defaults to LeaseDuration / 3.
	HeartbeatInterval time.Duration
	// PollInterval is how long an idle Manager waits before looking for work
	// again. With a broker that says which queues a wake is for
	// (broker.ReadyWaiter, as both of this module's do), an idle Manager is
	// woken for jobs coming in, and polls only as a safety net: the queues
	// that leased jobs in the last second, and one queue in turn, every
	// PollInterval at first and every 8 PollIntervals while nothing comes.
	// A job whose wake was lost is then fetched within
	// len(Queues) × 8 × PollInterval. Defaults to 100ms.
	PollInterval time.Duration
	// MaintainInterval is how often expired leases are recovered, due jobs
	// promoted and retention applied. A queue found with no pending,
	// scheduled or active job is maintained again only after 5 minutes (or
	// MaintainInterval, if longer), or LeaseDuration after this Manager
	// hears of jobs coming into it (no lease on them can expire sooner),
	// whichever is first: a Manager serving many quiet queues costs the
	// broker little. Defaults to 1s.
	MaintainInterval time.Duration
	// MaintainLease is how long one Manager's turn at maintaining a queue
	// lasts without renewal, when the broker can elect one
	// (broker.LeaderStore): one Manager per queue maintains it, renewing
	// every MaintainInterval, and if it dies another takes over within
	// MaintainLease. Brokers without the capability are maintained by
	// every Manager. Must exceed MaintainInterval. Defaults to 5 ×
	// MaintainInterval.
	MaintainLease time.Duration
	// ShutdownTimeout is how long Shutdown waits for running jobs before
	// cancelling them. Defaults to 30s.
	ShutdownTimeout time.Duration
	// AbandonGrace is how long a processor may run on once its context
	// has ended (its timeout, a lost lease, a cancel) before the Manager
	// ends the attempt without it: the attempt fails with an error saying
	// so and is retried per the policy (a lost lease: discarded), as asynq
	// does at a timeout. Go cannot stop a goroutine, so the processor keeps
	// its run slot until it returns (concurrency stays bounded) and Stuck
	// counts it meanwhile; its late outcome is dropped. Defaults to 10s.
	AbandonGrace time.Duration
	// FetchBatch caps the jobs leased per fetch. Defaults to 64.
	FetchBatch int
	// Prefetch is how many leased jobs beyond Concurrency the Manager may
	// hold, waiting in memory for a free slot. Larger fetches raise
	// throughput when jobs are short (each fetch and acknowledgement is a
	// transaction or round trip); the cost is that those jobs wait here
	// rather than on another worker. Their leases are kept alive, and on
	// Shutdown they are handed back at once. Per queue, the same number of
	// jobs may wait beyond the queue's Concurrency.
	//
	// Defaults to 0: adaptive. Each queue then leases ahead only what its
	// run slots are expected to start within 2ms, judged by how long its
	// recent jobs held a slot (at most FetchBatch), and nothing while its
	// last fetch found fewer jobs than it asked for (the queue is draining, so
	// other workers may be waiting), before one of its jobs has finished,
	// or while none has given its slot up for 2ms (its jobs have turned
	// long); a job leased ahead that waits for a slot while no job of its
	// queue has finished for 50ms is handed back for any worker to take.
	// Short jobs are fetched in full batches; jobs that run for more than
	// a few milliseconds are never held back from another worker. A
	// positive number fixes the prefetch at that many jobs; PrefetchOff
	// (-1) leases only what can start now, as the Manager did before the
	// adaptive default (asynq and River do the same). Jobs leased ahead
	// take free slots priority first, then tenant by tenant (the tenant
	// with the fewest jobs running or leased ahead first), each tenant's
	// in fetch order: in a Fair queue, a tenant's job fetched just after
	// a flooding tenant's batch starts at the next free slot.
	Prefetch int
	// CompletedMaxAge and CompletedMaxCount bound how long completed jobs
	// are kept. Default to 24h and 10,000 per queue; negative keeps them.
	// Retention keeps pace with any completion rate: maintenance calls the
	// broker again at once while it reports more to remove, and the Redis
	// broker applies the count with each completion batch, so a queue holds
	// at most CompletedMaxCount completed jobs plus what completes in one
	// MaintainInterval (on Redis: CompletedMaxCount + 99, trimmed as jobs
	// complete).
	CompletedMaxAge   time.Duration
	CompletedMaxCount int
	// DeadMaxAge removes dead jobs older than this. Defaults to keeping them.
	DeadMaxAge time.Duration
	// MaxCrashes is the quarantine rule of the queues that set none
	// (QueueConfig.MaxCrashes): a job whose worker died under it this many
	// times in a row goes to dead. A worker killed from outside (OOM, a
	// node lost, a deploy's SIGKILL) looks the same to the broker as a job
	// that crashes its process, so the rule can quarantine a healthy job
	// whose workers kept dying under it; the higher the number, the rarer
	// that, and the longer a poison job keeps killing workers. A graceful
	// shutdown hands jobs back and never counts. Defaults to 0: off, as
	// River and asynq have it (a crashed attempt is an attempt like any
	// other); the service turns it on (WORKER_MAX_CRASHES).
	MaxCrashes int
	// WorkerID names this Manager in leases and logs. Defaults to
	// host:pid:random.
	WorkerID string
	// Logger receives the Manager's logs. Payloads are never logged.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Recovery chooses, per error class, how a failed job is retried or
	// failed and whether to notify (see package recovery). NoRetry and
	// RetryAfter errors keep their meaning and take precedence. Defaults to
	// nil: every failure retries with Retry's backoff while the job has
	// attempts left.
	Recovery *recovery.Policy
	// OnEvent, if set, is called for every job event (started, completed,
	// retrying, dead, lease lost, handed back), synchronously from the
	// job's goroutine: it must be quick and safe for concurrent use.
	// Package metrics provides one.
	OnEvent func(Event)
	// Encryption, when set, opens sealed job data before the processor
	// runs and seals the results, progress and error messages of the jobs
	// of its queues and types (see Encryption). Defaults to none.
	Encryption *Encryption
	// OnUndecryptable, if set, is called after a job whose data does not
	// open has been moved to dead unprocessed, with the reason, e.g. to
	// write an audit entry. It is called from the job's goroutine and must
	// be safe for concurrent use.
	OnUndecryptable func(ctx context.Context, job *Job, err error)
}

func (c *ManagerConfig) withDefaults() error {
	if len(c.Queues) == 0 {
		c.Queues = []QueueConfig{{Name: "default"}}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 5
	}
	if c.Encryption != nil {
		if err := c.Encryption.check(); err != nil {
			return err
		}
	}
	def(&c.Timeout, 5*time.Minute)
	def(&c.LeaseDuration, 30*time.Second)
	def(&c.HeartbeatInterval, c.LeaseDuration/3)
	def(&c.PollInterval, 100*time.Millisecond)
	def(&c.MaintainInterval, time.Second)
	def(&c.MaintainLease, 5*c.MaintainInterval)
	def(&c.ShutdownTimeout, 30*time.Second)
	def(&c.AbandonGrace, 10*time.Second)
	def(&c.CompletedMaxAge, 24*time.Hour)
	if c.CompletedMaxCount == 0 {
		c.CompletedMaxCount = 10000
	}
	if c.FetchBatch == 0 {
		c.FetchBatch = 64
	}
	if c.Retry == (retry.Policy{}) {
		c.Retry = retry.DefaultPolicy()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s:%d:%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d is below 1", c.Concurrency)
	case c.Timeout < 0 || c.LeaseDuration < 0 || c.PollInterval < 0 || c.MaintainInterval < 0 || c.ShutdownTimeout < 0 || c.AbandonGrace < 0:
		return errors.New("timeout, lease duration, poll, maintain and shutdown intervals and abandon grace must not be negative")
	case c.MaintainLease <= c.MaintainInterval:
		return fmt.Errorf("maintain lease %v must exceed the maintain interval %v", c.MaintainLease, c.MaintainInterval)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.LeaseDuration:
		return fmt.Errorf("heartbeat interval %v must be positive and below the lease duration %v", c.HeartbeatInterval, c.LeaseDuration)
	case c.Prefetch < PrefetchOff || c.Prefetch > 10000:
		return fmt.Errorf("prefetch %d is outside [%d, 10000] (0: adaptive, %d: off)", c.Prefetch, PrefetchOff, PrefetchOff)
	case c.FetchBatch < 1 || c.FetchBatch > 1000:
		return fmt.Errorf("fetch batch %d is outside [1, 1000]", c.FetchBatch)
	case c.MaxCrashes < 0 || c.MaxCrashes > broker.MaxAttemptHistory:
		return fmt.Errorf("max crashes %d is outside [0, %d] (0: off)", c.MaxCrashes, broker.MaxAttemptHistory)
	}
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	if c.Recovery != nil {
		if err := c.Recovery.Validate(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i := range c.Queues {
		q := &c.Queues[i]
		if err := broker.ValidateQueueName(q.Name); err != nil {
			return fmt.Errorf("queue %d: %w", i, err)
		}
		if seen[q.Name] {
			return fmt.Errorf("queue %q is listed twice", q.Name)
		}
		seen[q.Name] = true
		q.Priority = broker.PriorityOrDefault(q.Priority)
		if q.Priority < broker.MinPriority || q.Priority > broker.MaxPriority {
			return fmt.Errorf("queue %q: priority %d is outside [%d, %d] (0 means the default, %d)",
				q.Name, q.Priority, broker.MinPriority, broker.MaxPriority, broker.DefaultPriority)
		}
		if q.Concurrency < 0 {
			return fmt.Errorf("queue %q: concurrency %d is negative", q.Name, q.Concurrency)
		}
		if q.MaxCrashes < -1 || q.MaxCrashes > broker.MaxAttemptHistory {
			return fmt.Errorf("queue %q: max crashes %d is outside [-1, %d] (0: the manager's, -1: off)", q.Name, q.MaxCrashes, broker.MaxAttemptHistory)
		}
		if q.Concurrency == 0 || q.Concurrency > c.Concurrency {
			q.Concurrency = c.Concurrency
		}
	}
	return nil
}

// errShutdown is the cancel cause of jobs cut short by a hard shutdown.
var errShutdown = errors.New("worker is shutting down")

// Manager leases jobs from a broker and runs their processors: the seed's
// WorkerManager. Register processors, then Start; Shutdown stops it.
type Manager struct {
	b   broker.Broker
	cfg ManagerConfig
	log *slog.Logger

	mu     sync.Mutex
	procs  map[string]Processor
	mws    []Middleware
	queues []*queueSlot
	busy   int // leased jobs: running or waiting for a slot
	// concurrency is the most jobs that run at once: cfg.Concurrency
	// until SetConcurrency changes it.
	concurrency int
	started     bool
	stopped     bool

	// The components, made by Start: the fetcher leases jobs, the executor
	// runs them, the acknowledger batches their completions, the
	// heartbeater extends their leases, the maintainer does queue
	// housekeeping.
	fetch *fetcher
	exec  *executor
	acker *acknowledger.Acknowledger
	beats *heartbeat.Heartbeater
	maint *maintenance.Maintainer

	tasks     []func(ctx context.Context) // started at Start; see Go
	taskCtx   context.Context
	stopTasks context.CancelFunc
	taskWG    sync.WaitGroup

	// stuck counts processors whose attempt was ended without them
	// (AbandonGrace) and that have not returned yet.
	stuck atomic.Int64
}

type queueSlot struct {
	cfg    QueueConfig
	weight int // share of first polls under weighted scheduling; see queueWeights
	// own is the queue's Concurrency as configured, before the Manager's
	// capped it; 0 when it follows the Manager's.
	own     int
	busy    int // leased jobs of this queue in this Manager; m.mu
	running int // jobs of this queue whose processor runs; m.mu
	// runningBy counts the running jobs by tenant ("" for none), for
	// yields; m.mu.
	runningBy map[string]int
	// For adaptive prefetch (Manager.prefetch), under m.mu: slotTime is a
	// moving average of how long the queue's jobs held a run slot (0 until
	// one finished), lastRelease when one last gave its slot up, and
	// draining whether the last fetch found fewer jobs than it asked for.
	slotTime    time.Duration
	lastRelease time.Time
	draining    bool
	// Jobs leased ahead, under m.mu (executor.run): lastTurn, per tenant
	// ("" for none), is closed once the tenant's job fetched last has its
	// run slot; ahead holds, per tenant, its jobs not started yet, in fetch
	// order (see queueSlot.yields).
	lastTurn map[string]chan struct{}
	ahead    map[string][]*Job
}

// NewManager returns a Manager on b. It validates cfg and fills in defaults.
func NewManager(b broker.Broker, cfg ManagerConfig) (*Manager, error) {
	if b == nil {
		return nil, errors.New("worker: new manager: broker is nil")
	}
	cfg.Queues = slices.Clone(cfg.Queues)
	own := make([]int, len(cfg.Queues))
	for i, q := range cfg.Queues {
		own[i] = q.Concurrency
	}
	if err := cfg.withDefaults(); err != nil {
		return nil, fmt.Errorf("worker: new manager: %w", err)
	}
	m := &Manager{
		b: b, cfg: cfg,
		log:         cfg.Logger.With("worker_id", cfg.WorkerID),
		procs:       map[string]Processor{},
		concurrency: cfg.Concurrency,
	}
	weights := queueWeights(cfg.Queues)
	for i, q := range cfg.Queues {
		qs := &queueSlot{cfg: q, weight: weights[i]}
		if len(own) == len(cfg.Queues) { // withDefaults added no default queue
			qs.own = own[i]
		}
		m.queues = append(m.queues, qs)
	}
	return m, nil
}

// limit returns how many of the queue's jobs may run at once under the
// Manager's concurrency: its own Concurrency, capped by the Manager's.
func (q *queueSlot) limit(concurrency int) int {
	if q.own == 0 {
		return concurrency
	}
	return min(q.own, concurrency)
}

// ID returns the Manager's worker id.
func (m *Manager) ID() string { return m.cfg.WorkerID }

// Config returns the Manager's configuration with defaults filled in, as
// it was given to NewManager: Concurrency is the starting value, which
// SetConcurrency does not change (see Concurrency).
func (m *Manager) Config() ManagerConfig { return m.cfg }

// Register sets the processor for a job type. It must be called before
// Start; registering a type twice is an error.
func (m *Manager) Register(jobType string, p Processor) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case jobType == "":
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "register processor", Err: errors.New("job type is empty")}
	case p == nil:
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "register processor", Err: fmt.Errorf("processor for %q is nil", jobType)}
	case m.started:
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "register processor", Err: fmt.Errorf("manager already started; register %q before Start", jobType)}
	case m.procs[jobType] != nil:
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "register processor", Err: fmt.Errorf("type %q already has a processor", jobType)}
	}
	m.procs[jobType] = p
	return nil
}

// HandleFunc registers a function as the processor for a job type.
func (m *Manager) HandleFunc(jobType string, f func(ctx context.Context, job *Job) error) error {
	if f == nil {
		return m.Register(jobType, nil)
	}
	return m.Register(jobType, ProcessorFunc(f))
}

// Use adds middleware around every processor, outermost first. It must be
// called before Start.
func (m *Manager) Use(mw ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mws = append(m.mws, mw...)
}

// wrap returns p inside the Manager's middleware; m.mu is held.
func (m *Manager) wrap(p Processor) Processor {
	for i := len(m.mws) - 1; i >= 0; i-- {
		p = m.mws[i](p)
	}
	return p
}

// Start starts fetching and processing in the background. It returns once
// the Manager listens for wakes of its queues (when the broker offers
// them); call Shutdown to stop.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "start", Err: errors.New("already started")}
	}
	if err := m.b.Ping(ctx); err != nil {
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "start", Err: fmt.Errorf("reach broker: %w", err)}
	}
	if err := m.turnFairOn(ctx); err != nil {
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "start", Err: err}
	}
	for t, p := range m.procs {
		m.procs[t] = m.wrap(p)
	}
	m.started = true
	m.fetch = newFetcher(m)
	m.exec = newExecutor(m, ctx, m.fetch.stopped)
	m.acker = m.newAcknowledger()
	m.acker.Start()
	m.beats = m.newHeartbeater()
	m.beats.Start()
	m.maint = m.newMaintainer()
	m.maint.Start()
	m.taskCtx, m.stopTasks = context.WithCancel(context.WithoutCancel(ctx))
	for _, f := range m.tasks {
		m.runTask(f)
	}
	m.tasks = nil
	m.fetch.ready.prime(ctx)
	m.fetch.start()
	m.log.Info("worker started", "queues", len(m.queues), "concurrency", m.concurrency)
	return nil
}

// Go runs f in the background for as long as the Manager runs, for
// housekeeping tied to it (package workflow applies run retention this
// way). f's context is cancelled when Shutdown begins, and Shutdown waits
// for f to return. Called before Start, f starts with the Manager; called
// after Shutdown began, f does not run.
func (m *Manager) Go(f func(ctx context.Context)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.stopped:
	case m.started:
		m.runTask(f)
	default:
		m.tasks = append(m.tasks, f)
	}
}

// runTask starts f; m.mu is held.
func (m *Manager) runTask(f func(ctx context.Context)) {
	m.taskWG.Add(1)
	go func() {
		defer m.taskWG.Done()
		f(m.taskCtx)
	}()
}

// Run starts the Manager, blocks until ctx is done, then shuts down
// gracefully within ShutdownTimeout.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return m.Shutdown(context.Background())
}

// Shutdown stops fetching, waits up to ShutdownTimeout (or until ctx is
// done) for running jobs, then cancels what still runs and hands those jobs
// back to the broker at once, without counting the attempt. It returns an
// error if some processor ignored cancellation; its job is handed back all
// the same, so a late completion is rejected as ErrLeaseLost.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if !m.started || m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	m.mu.Unlock()

	m.stopTasks()
	m.fetch.stop()

	drainCtx, cancel := context.WithTimeout(ctx, m.cfg.ShutdownTimeout)
	defer cancel()
	var err error
	if !m.exec.wait(drainCtx) {
		m.log.Warn("shutdown timeout reached; cancelling running jobs", "running", m.Busy())
		m.exec.stopHard()
		graceCtx, cancelGrace := context.WithTimeout(context.Background(), 5*time.Second)
		if !m.exec.wait(graceCtx) {
			n := m.exec.releaseStuck()
			err = &WorkerError{WorkerID: m.cfg.WorkerID, Op: "shutdown", Err: fmt.Errorf("%d processors ignored cancellation; their jobs were handed back", n)}
		}
		cancelGrace()
	}
	m.beats.Stop()
	m.maint.Stop()
	m.taskWG.Wait()
	if err == nil {
		// With processors still running, a late completion could be
		// queued after the flush; the acknowledger is left running then.
		m.acker.Stop()
	}
	m.exec.stopHard()
	m.exec.closeIdle(err == nil)
	m.log.Info("worker stopped")
	return err
}

// Stuck returns how many processors ran on past their context's end and
// AbandonGrace, and still have not returned: their attempts were ended
// without them, but each holds its run slot until it returns. Safe for
// concurrent use.
func (m *Manager) Stuck() int { return int(m.stuck.Load()) }

// Busy returns the number of jobs running now.
func (m *Manager) Busy() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exec == nil {
		return 0
	}
	return m.exec.running
}

// Concurrency returns the most jobs the Manager runs at once now: the
// configured Concurrency, or the last value given to SetConcurrency.
func (m *Manager) Concurrency() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.concurrency
}

// SetConcurrency changes the most jobs the Manager runs at once, at any
// time, including while jobs run; package scale's Scaler calls it. Raising
// it lets the Manager lease and start more jobs at once. Lowering it never
// cancels, hands back or repeats a running job: running jobs finish, and
// the Manager leases and starts fewer until fewer than n run. Each queue
// keeps its own Concurrency, capped by n (a queue configured without one
// follows n). It returns an error if n is below 1. Safe for concurrent use.
func (m *Manager) SetConcurrency(n int) error {
	if n < 1 {
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "set concurrency", Err: fmt.Errorf("concurrency %d is below 1", n)}
	}
	m.mu.Lock()
	old := m.concurrency
	m.concurrency = n
	if m.exec != nil {
		m.exec.setIdleMax(n)
	}
	if m.exec != nil && n > old {
		m.exec.wakeWaiters()
	}
	fetch := m.fetch
	m.mu.Unlock()
	if fetch != nil && n > old {
		fetch.slotFreed()
	}
	// Debug: a caller that decides (the Scaler) logs why, once.
	m.log.Debug("concurrency changed", "from", old, "to", n)
	return nil
}

// SetQueueConcurrency changes how many of queue's jobs run at once in
// this Manager, at any time, as SetConcurrency does for all queues: n
// replaces the queue's configured Concurrency, still capped by the
// Manager's concurrency; 0 makes the queue follow the Manager's. It
// returns an error if n is negative or the Manager does not run queue.
// Safe for concurrent use.
func (m *Manager) SetQueueConcurrency(queue string, n int) error {
	if n < 0 {
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "set queue concurrency", Err: fmt.Errorf("queue %q: concurrency %d is negative", queue, n)}
	}
	m.mu.Lock()
	var qs *queueSlot
	for _, q := range m.queues {
		if q.cfg.Name == queue {
			qs = q
		}
	}
	if qs == nil {
		m.mu.Unlock()
		return &WorkerError{WorkerID: m.cfg.WorkerID, Op: "set queue concurrency", Err: fmt.Errorf("queue %q is not one of this manager's", queue)}
	}
	old := qs.limit(m.concurrency)
	qs.own = n
	raised := qs.limit(m.concurrency) > old
	if m.exec != nil && raised {
		m.exec.wakeWaiters()
	}
	fetch := m.fetch
	m.mu.Unlock()
	if fetch != nil && raised {
		fetch.slotFreed()
	}
	m.log.Debug("queue concurrency changed", "queue", queue, "from", old, "to", n)
	return nil
}

// QueueConcurrency returns how many of queue's jobs may run at once in
// this Manager now, and false if the Manager does not run queue.
func (m *Manager) QueueConcurrency(queue string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, q := range m.queues {
		if q.cfg.Name == queue {
			return q.limit(m.concurrency), true
		}
	}
	return 0, false
}

// Draining reports whether Shutdown has begun: the Manager fetches no more
// jobs, so it should not be counted as ready.
func (m *Manager) Draining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

func (r *running) lease() *broker.JobLeaseParams {
	return &broker.JobLeaseParams{Queue: r.job.Queue, ID: r.job.ID, Token: r.job.LeaseToken}
}

func (m *Manager) jobLog(j *Job) *slog.Logger {
	return m.log.With("job_id", j.ID, "queue", j.Queue, "type", j.Type, "attempt", j.Attempt, "tenant_id", j.TenantID)
}
