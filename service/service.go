package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/dashboard"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/internal/workerreg"
	"github.com/aibos/worker/jobschema"
	"github.com/aibos/worker/metrics"
	"github.com/aibos/worker/retry"
	"github.com/aibos/worker/scale"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// Service is the aibos-worker service: one Manager over the configured
// queues, the workflow engine, the cron scheduler, and an HTTP server with
// /metrics, /livez, /readyz, /health, the admin API under /api/v1 (see
// package admin) and the web dashboard at / over it. Build it with New, register Go
// processors and workflows, then Start; Shutdown drains it.
type Service struct {
	cfg   *Config
	log   *slog.Logger
	store *store

	client  *worker.Client
	schemas *jobschema.Registry
	manager *worker.Manager
	engine  *workflow.Engine
	cron    *schedule.Cron
	once    *schedule.OneTime
	metrics *metrics.WorkerMetrics
	obs     *observability
	checker *health.Checker
	reg     *prometheus.Registry
	// callbacks and scaler exist when the configuration asks for them;
	// balancers spread the calls of job types bound to several instances.
	callbacks *httpproc.Callbacks
	// keyWarning, when set, logs at Start what is wrong with the
	// encryption keys (generated, or missing).
	keyWarning func(*slog.Logger)
	scaler     *scale.Scaler
	balancers  []*scale.Balancer
	// tokens is the API's token store; api serves /api/v1 when
	// WORKER_API_ENABLED. series records the per-minute series and
	// heartbeat the worker registry's entry, which the API shows.
	tokens *admin.TokenStore
	api    *admin.Server
	audit  *audit.Trail // the trail api records to
	// apiHandler is what serves /api/v1: api with its middleware. The
	// dashboard at / calls it for every page and action, so that both
	// go through the same checks and records.
	apiHandler http.Handler
	dash       *dashboard.Dashboard
	series     *series.Recorder
	stopSeries func() // ends the recorder's Run after its last flush
	heartbeat  *workerreg.Heartbeater
	// auditKeyGenerated: the trail's key is the one generated in the
	// data directory, which Start warns of.
	auditKeyGenerated bool

	mu      sync.Mutex
	procs   map[string]worker.Processor
	started bool
	closed  bool
	ln      net.Listener
	srv     *http.Server
	certs   *certReloader // the listener's certificate, when it serves TLS
	served  chan error    // the HTTP server's end
}

// New opens the broker the configuration names and builds the service's
// parts; nothing runs until Start. A configuration the parts reject is a
// *ConfigError; a broker that cannot be opened is another error. The
// caller must call Shutdown (or Close, if Start is never called).
func New(ctx context.Context, cfg *Config, log *slog.Logger) (*Service, error) {
	if cfg == nil {
		return nil, errors.New("service: new: config is nil")
	}
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s := &Service{cfg: cfg, log: log, store: st, procs: map[string]worker.Processor{}}
	if err := s.build(); err != nil {
		if s.obs != nil {
			_ = s.obs.shutdown(ctx)
		}
		_ = st.close()
		return nil, err
	}
	return s, nil
}

// build makes the parts on the open store.
func (s *Service) build() error {
	c, b := s.cfg, s.store.b
	var err error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return &ConfigError{Name: "WORKER_TLS_CERT_FILE", Want: "and WORKER_TLS_KEY_FILE go together: set both or neither"}
	}
	if c.TLSCertFile != "" {
		if s.certs, err = newCertReloader(c.TLSCertFile, c.TLSKeyFile, s.log.With("component", "http")); err != nil {
			return err
		}
	}
	enc, unserved, warning, err := encryption(c, s.store.kind)
	if err != nil {
		return err
	}
	if s.obs, err = newObservability(c, enc); err != nil {
		return err
	}
	s.schemas = jobschema.New()
	s.keyWarning = warning
	ccfg := worker.ClientConfig{DefaultMaxAttempts: c.RetryAttempts, MaxQueueLength: c.QueueMaxLength, Schemas: s.schemas, Encryption: enc}
	s.obs.client(&ccfg)
	if s.client, err = worker.NewClient(b, ccfg); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	rec, err := c.RecoveryPolicy()
	if err != nil {
		return &ConfigError{Name: "recovery", Want: err.Error()}
	}
	rec.Notifier = nil // the default: a log line per notified failure
	queues := slices.DeleteFunc(slices.Clone(c.Queues), func(q worker.QueueConfig) bool { return slices.Contains(unserved, q.Name) })
	if !slices.Contains(unserved, workflow.DefaultQueue) {
		queues = append(queues, worker.QueueConfig{Name: workflow.DefaultQueue})
	}
	mcfg := worker.ManagerConfig{
		Queues:          queues,
		Concurrency:     c.Concurrency,
		Retry:           retry.Policy{MaxAttempts: c.RetryAttempts, BaseDelay: c.RetryDelay}.WithDefaults(),
		Timeout:         c.Timeout,
		ShutdownTimeout: c.DrainTimeout,
		LeaseDuration:   c.LeaseDuration,
		MaxCrashes:      c.MaxCrashes,
		AbandonGrace:    c.AbandonGrace,
		CompletedMaxAge: c.QueueDefaultTTL,
		Recovery:        rec,
		Logger:          s.log,
	}
	if enc != nil && enc.Keys != nil {
		mcfg.Encryption = enc
		mcfg.OnUndecryptable = s.auditUndecryptable
	}
	mcfg.Retry.Jitter = true
	if s.series, err = series.NewRecorder(b, series.Config{Logger: s.log}); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	mcfg.OnEvent = s.series.Observe
	if c.MonitoringEnabled {
		s.metrics = metrics.New(metrics.Config{Broker: b, Types: c.JobTypeNames(),
			TopTenants: c.MetricsTenantTop, Tenants: s.registeredTenants})
		mcfg.OnEvent = func(e worker.Event) { s.metrics.Observe(e); s.series.Observe(e) }
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(s.metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		s.obs.register(s.reg)
	}
	if s.manager, err = worker.NewManager(b, mcfg); err != nil {
		return &ConfigError{Name: "worker", Want: err.Error()}
	}
	s.obs.manager(s.manager)
	if s.metrics != nil {
		s.metrics.Attach(s.manager)
	}
	wcfg, scfg := workflow.Config{Logger: s.log}, schedule.Config{Logger: s.log, Now: s.Now}
	s.obs.workflow(&wcfg)
	s.obs.schedule(&scfg)
	// Schedules seal with the Manager's keys; with none (Redis, no key),
	// the encrypted queues are not served and adds to them are refused.
	if mcfg.Encryption != nil {
		scfg.Encryption = mcfg.Encryption
	}
	// Runs seal with the same keys when WORKER_ENCRYPTED_QUEUES names the
	// workflows queue; with no key (Redis) that queue is unserved and
	// Execute refuses, as the Client refuses adds.
	if enc.Applies(workflow.DefaultQueue, workflow.JobTypeStep) {
		wcfg.Encryption = enc
		wcfg.OnUndecryptable = s.auditUndecryptableRun
	}
	if s.engine, err = workflow.NewEngine(b, wcfg); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if s.cron, err = schedule.New(b, scfg); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if s.once, err = schedule.NewOneTime(b); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if mcfg.Encryption != nil {
		s.once.Encryption = mcfg.Encryption
	}
	s.checker = s.newChecker()
	if s.callbacks, err = s.newCallbacks(); err != nil {
		return err
	}
	if s.scaler, err = s.newScaler(); err != nil {
		return err
	}
	return s.newAPI()
}

// Register makes a Go processor available under name: jobs of the type
// name run it, and the config file's job_types may bind other types to it
// (processor: name). Call it before Start; a name registered twice is an
// error.
func (s *Service) Register(name string, p worker.Processor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case name == "":
		return errors.New("service: register processor: name is empty")
	case p == nil:
		return fmt.Errorf("service: register processor %q: processor is nil", name)
	case s.started:
		return fmt.Errorf("service: register processor %q: service already started", name)
	case s.procs[name] != nil:
		return fmt.Errorf("service: register processor %q: registered twice", name)
	}
	s.procs[name] = p
	return nil
}

// Now returns the service's clock: the machine's, moved by
// Config.TestClockOffset in tests.
func (s *Service) Now() time.Time { return time.Now().Add(s.cfg.TestClockOffset) }

// Client returns the client the service enqueues with: the configured
// queues' QUEUE_MAX_LENGTH and WORKER_RETRY_ATTEMPTS apply.
func (s *Service) Client() *worker.Client { return s.client }

// Schemas returns the JSON Schemas the service's client (and so the API)
// checks payloads against at enqueue: add a job type's schema before
// Start. Start then loads WORKER_SCHEMA_DIR over them.
func (s *Service) Schemas() *jobschema.Registry { return s.schemas }

// Manager returns the service's Manager.
func (s *Service) Manager() *worker.Manager { return s.manager }

// Workflows returns the workflow engine, to register step processors on
// before Start (register workflows with RegisterWorkflow, which adds the
// callbacks).
func (s *Service) Workflows() *workflow.Engine { return s.engine }

// Cron returns the cron scheduler.
func (s *Service) Cron() *schedule.Cron { return s.cron }

// OneTime returns the one-time scheduler.
func (s *Service) OneTime() *schedule.OneTime { return s.once }

// Broker returns the open broker.
func (s *Service) Broker() broker.Broker { return s.store.b }

// Addr returns the address the HTTP server listens on, once Start has
// returned; with WORKER_HTTP_ADDR :0 it holds the port chosen.
func (s *Service) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Start binds the job types to processors, stores the configured
// schedules, listens for HTTP and starts processing. It returns at once.
// A job type bound to a processor nobody registered is a *ConfigError.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("service: start: already started or shut down")
	}
	if s.cfg.SchemaDir != "" {
		if err := s.schemas.LoadDir(s.cfg.SchemaDir); err != nil {
			return &ConfigError{Name: "WORKER_SCHEMA_DIR", Value: s.cfg.SchemaDir, Quote: true, Want: err.Error()}
		}
	}
	if err := s.bindProcessors(); err != nil {
		return err
	}
	logStoreWarnings(s.log, s.store.warnings)
	if s.keyWarning != nil {
		s.keyWarning(s.log)
	}
	if s.callbacks != nil {
		if err := s.callbacks.Attach(s.manager); err != nil {
			return fmt.Errorf("service: attach callbacks: %w", err)
		}
	}
	if slices.ContainsFunc(s.manager.Config().Queues, func(q worker.QueueConfig) bool { return q.Name == workflow.DefaultQueue }) {
		if err := s.engine.Attach(s.manager); err != nil {
			return fmt.Errorf("service: attach workflow engine: %w", err)
		}
	}
	if err := s.upsertSchedules(ctx); err != nil {
		return err
	}
	if err := s.reconcileQueues(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("service: listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	if err := s.manager.Start(ctx); err != nil {
		_ = ln.Close()
		return fmt.Errorf("service: %w", err)
	}
	s.started, s.ln = true, ln
	s.startRegistries(ctx)
	for _, b := range s.balancers {
		b.Start(context.WithoutCancel(ctx))
	}
	if err := s.checker.Start(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("start background health checks", "err", err)
	}
	if s.scaler != nil {
		if err := s.scaler.Start(context.WithoutCancel(ctx)); err != nil {
			s.log.Error("start scaler", "err", err)
		}
	}
	s.srv = s.httpServer(s.handler())
	s.served = make(chan error, 1)
	go func() {
		if s.certs != nil {
			s.served <- s.srv.ServeTLS(ln, "", "")
			return
		}
		s.served <- s.srv.Serve(ln)
	}()
	s.manager.Go(func(ctx context.Context) {
		if err := s.cron.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("cron scheduler stopped", "err", err)
		}
	})
	if s.metrics != nil {
		s.manager.Go(s.logMetrics)
	}
	s.warnGeneratedKey()
	s.log.Info("http listening", "addr", ln.Addr().String(), "tls", s.certs != nil)
	s.log.Info("service started", "store", s.store.kind, "at", s.store.where,
		"queues", len(s.cfg.Queues), "concurrency", s.cfg.Concurrency, "job_types", len(s.cfg.JobTypes), "schedules", len(s.cfg.Schedules))
	return nil
}

// Done returns a channel that yields the HTTP server's error if it stops
// serving on its own, which only a failure does.
func (s *Service) Done() <-chan error { return s.served }

// bindProcessors registers a processor on the Manager for every job type:
// each Go processor under its own name unless the file binds that type
// elsewhere, and each job type of the file to what it names.
func (s *Service) bindProcessors() error {
	for _, t := range s.cfg.JobTypeNames() {
		jt := s.cfg.JobTypes[t]
		p, err := s.processorFor(t, jt)
		if err != nil {
			return err
		}
		if err := s.manager.Register(t, s.withCallbacks(p)); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	for name, p := range s.procs {
		if _, bound := s.cfg.JobTypes[name]; bound {
			continue
		}
		if err := s.manager.Register(name, s.withCallbacks(p)); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	return nil
}

// withCallbacks wraps p so that the jobs it finishes send completion
// callbacks, when they are configured.
func (s *Service) withCallbacks(p worker.Processor) worker.Processor {
	if s.callbacks == nil {
		return p
	}
	return s.callbacks.Wrap(p)
}

// RegisterWorkflow registers a workflow on the engine, with completion
// callbacks for its runs when they are configured. Register its step
// processors with Workflows().RegisterStepProcessor first.
func (s *Service) RegisterWorkflow(w workflow.Workflow) error {
	if s.callbacks != nil {
		w = s.callbacks.Workflow(w)
	}
	if err := s.engine.Register(w); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if s.obs.workflows != nil {
		s.obs.workflows.Init(w.Name)
	}
	return nil
}

// Callbacks returns the completion callbacks, or nil when none are
// configured. Cancelling through it (CancelJob, CancelRun) sends the
// cancelled callback; the admin API cancels this way.
func (s *Service) Callbacks() *httpproc.Callbacks { return s.callbacks }

// API returns the admin API served under /api/v1, or nil when
// WORKER_API_ENABLED is false.
func (s *Service) API() *admin.Server { return s.api }

// SetLedger makes the API's accounting routes (/api/v1/companies/...)
// serve store, the ledger the accounting processors post to. Without it
// they answer 503. The caller keeps owning store: close it after Shutdown.
func (s *Service) SetLedger(store accounting.Store) {
	if s.api != nil {
		s.api.SetLedger(store)
	}
}

// Tokens returns the API's token store, on the service's broker.
func (s *Service) Tokens() *admin.TokenStore { return s.tokens }

// Scaler returns the WorkerScaler, or nil when scaling is off.
func (s *Service) Scaler() *scale.Scaler { return s.scaler }

// processorFor builds the processor of one configured job type.
func (s *Service) processorFor(jobType string, jt JobType) (worker.Processor, error) {
	if jt.HTTP != nil {
		return s.httpProcessor(jobType, jt.HTTP)
	}
	p := s.procs[jt.Processor]
	if p == nil {
		return nil, &ConfigError{Where: "config file " + s.cfg.File, Name: "job_types." + jobType + ".processor",
			Value: jt.Processor, Quote: true, Want: fmt.Sprintf("want a Go processor compiled into this binary (registered: %v)", s.procNames())}
	}
	return p, nil
}

func (s *Service) procNames() []string {
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// upsertSchedules reconciles the stored cron schedules with the
// configured ones (schedule.Cron.Reconcile): the file wins for what it
// declares, which the admin API then shows as managed by config and does
// not change; schedules made through the API stay, and so do schedules
// since removed from the file (released to the API: other processes may
// still run the old file).
func (s *Service) upsertSchedules(ctx context.Context) error {
	entries := make([]schedule.Entry, 0, len(s.cfg.Schedules))
	for _, sc := range s.cfg.Schedules {
		data, err := json.Marshal(sc.Job.Data)
		if err != nil {
			return &ConfigError{Name: "schedules." + sc.Name + ".job.data", Want: err.Error()}
		}
		if sc.Job.Data == nil {
			data = nil
		}
		attempts := sc.Job.MaxAttempts
		if attempts == 0 {
			attempts = s.cfg.RetryAttempts
		}
		entries = append(entries, schedule.Entry{Name: sc.Name, Spec: sc.Cron, TimeZone: sc.TimeZone, Job: schedule.JobTemplate{
			Queue: sc.Job.Queue, Type: sc.Job.Type, Data: data, Priority: sc.Job.Priority, MaxAttempts: attempts,
			TenantID: sc.Job.TenantID, CompanyID: sc.Job.CompanyID, UniqueKey: sc.Job.UniqueKey,
		}})
	}
	if _, err := s.cron.Reconcile(ctx, s.cfg.File, entries); err != nil {
		return fmt.Errorf("service: store the configured schedules: %w", err)
	}
	return nil
}

// Shutdown drains the service: the Manager stops fetching, waits up to
// WORKER_DRAIN_TIMEOUT (or until ctx is done) for running jobs, cancels
// the rest and hands them back at once; then the HTTP server stops and the
// broker closes. /readyz answers 503 from the moment draining begins.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// The scaler stops first, so that it does not change the concurrency
	// of a draining Manager.
	if s.scaler != nil {
		s.scaler.Stop()
	}
	// Back to checks per request, so /readyz says "draining" at once
	// rather than at the next background run.
	s.checker.Stop()
	err := s.manager.Shutdown(ctx)
	s.stopRegistries(ctx)
	for _, b := range s.balancers {
		b.Close()
	}
	if s.srv != nil {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if herr := s.srv.Shutdown(hctx); herr != nil && err == nil {
			err = fmt.Errorf("service: stop http server: %w", herr)
		}
		cancel()
	}
	if s.audit != nil {
		// The last requests' entries are in the store; their head goes
		// to the head file before the process ends.
		if aerr := s.audit.Sync(); aerr != nil {
			s.log.Error("audit trail", "err", aerr)
		}
	}
	if oerr := s.obs.shutdown(context.WithoutCancel(ctx)); oerr != nil && err == nil {
		err = oerr
	}
	if cerr := s.store.close(); cerr != nil && err == nil {
		err = fmt.Errorf("service: close broker: %w", cerr)
	}
	return err
}

// Close releases a service that was never started. It is Shutdown.
func (s *Service) Close() error { return s.Shutdown(context.Background()) }

// handler serves the service's HTTP endpoints.
func (s *Service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /livez", health.Live())
	mux.Handle("GET /readyz", s.checker)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		rep, ok := s.checker.Latest()
		if !ok {
			rep = s.checker.Check(r.Context())
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(rep)
	})
	if s.reg != nil {
		mux.Handle("GET /metrics", promhttpHandler(s.reg))
	}
	if s.apiHandler != nil {
		mux.Handle("/api/v1/", s.apiHandler)
		mux.Handle("/", s.dash)
	}
	return mux
}

// logMetrics logs the seed's metrics snapshot every METRICS_INTERVAL.
func (s *Service) logMetrics(ctx context.Context) {
	t := time.NewTicker(s.cfg.MetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap, err := s.metrics.GetMetrics(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("metrics snapshot incomplete", "err", err)
		}
		s.log.Info("metrics",
			"jobs_processed", snap.JobsProcessed, "jobs_completed", snap.JobsCompleted, "jobs_failed", snap.JobsFailed,
			"jobs_retried", snap.JobsRetried, "jobs_dead", snap.JobsDead, "avg_processing_ms", snap.AvgProcessingTime.Milliseconds(),
			"queue_length", snap.QueueLength, "busy", snap.Busy, "concurrency", snap.Concurrency, "utilization", snap.Utilization)
	}
}
