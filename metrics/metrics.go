// Package metrics exports a Manager's work as Prometheus metrics and as
// the seed's WorkerMetrics snapshot. It lives outside package worker so
// that the worker's import path carries no Prometheus dependency.
//
// Wiring:
//
//	wm := metrics.New(metrics.Config{Broker: b})
//	cfg.OnEvent = wm.Observe
//	m, _ := worker.NewManager(b, cfg)
//	wm.Attach(m)
//	reg.MustRegister(wm)
//
// Counters (labels queue and type; tenant_id only with Config.TenantLabelLimit):
//
//	<ns>_jobs_processed_total   attempts that ran to an outcome: completed + failed
//	<ns>_jobs_completed_total   attempts that succeeded
//	<ns>_jobs_failed_total      failed attempts: retried + dead
//	<ns>_jobs_retried_total     failed attempts scheduled for another try
//	<ns>_jobs_dead_total        failed attempts that left the job dead
//	<ns>_job_processing_seconds histogram of processor run time of those attempts
//
// With Config.Types, the counters of every reported queue and type start
// at zero, so that rate() and alerts see them before the first job.
//
// Attempts whose lease was lost or that were handed back at shutdown have
// no outcome and count in none of these.
//
// Read from the broker and the Manager at scrape time:
//
//	<ns>_queue_jobs{queue,state}                     jobs per state
//	<ns>_queue_oldest_pending_age_seconds{queue}     now - QueueStats.OldestPendingAt, 0 when none pending
//	<ns>_queue_paused{queue}                         1 while paused
//	<ns>_manager_busy, <ns>_manager_concurrency       running jobs and the Manager's cap
//	<ns>_manager_utilization                         busy / concurrency, in [0, 1]
//	<ns>_manager_stuck_processors                    processors abandoned past their context's end, still running (Manager.Stuck)
//	<ns>_broker_up                                   1 if every queue could be read this scrape
//	<ns>_broker_data_loss_total                      data losses the broker detected (broker.DataLossReporter)
//	<ns>_queue_tenant_pending_jobs{queue,tenant_id}  pending jobs per tenant, for Config.WaitingTenants only (opt-in)
//	<ns>_queue_tenant_waiting_jobs{queue,tenant_id}  waiting jobs of the Config.TopTenants tenants with the most, the rest as "other" (opt-in, bounded)
//
// Beside WorkerMetrics: WorkflowMetrics (workflow.Config.OnEvent),
// CronMetrics (schedule.Config.OnTick), EndpointMetrics (a Transport for
// httpproc's client) and NewBuildInfo; each file documents its metrics.
//
// The oldest-pending age uses this machine's clock against the broker's
// timestamps, so clock skew shifts it; it is never reported below 0. See
// broker.QueueStats.OldestPendingAt for what each broker measures.
package metrics

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// Config configures WorkerMetrics. The zero value works.
type Config struct {
	// Namespace prefixes every metric name. Defaults to DefaultNamespace.
	Namespace string
	// Types are the job types whose counters start at zero in every
	// reported queue (Queues, or the attached Manager's). Defaults to
	// none: series appear with their first job.
	Types []string
	// Broker is read at scrape time for the queue gauges. Without it the
	// queue gauges are not exported.
	Broker broker.Broker
	// Queues to report. Defaults to the attached Manager's queues, or every
	// queue the broker lists when no Manager is attached.
	Queues []string
	// Buckets of the processing-time histogram, in seconds. Defaults to
	// prometheus.DefBuckets.
	Buckets []float64
	// TenantLabelLimit, when above 0, adds a tenant_id label to the
	// counters and histogram, bounded: the first TenantLabelLimit tenants
	// to finish an attempt get their own tenant_id and keep it, and every
	// other tenant's attempts (and those of jobs with no tenant) count
	// under tenant_id OtherTenants, so a queue and type have at most
	// TenantLabelLimit+1 series however many tenants there are. A tenant
	// never moves between series: a counter that did would look reset.
	// Under steady load the busiest tenants are among the first. Defaults
	// to 0: no tenant label.
	TenantLabelLimit int
	// WaitingTenants are the tenants whose pending jobs in each reported
	// queue are exported as <ns>_queue_tenant_pending_jobs{queue,tenant_id},
	// to watch fairness between them. Defaults to none: opt-in, because
	// each tenant costs one broker read per queue per scrape.
	WaitingTenants []string
	// TopTenants, when above 0, exports the waiting jobs (pending and
	// scheduled) of the TopTenants tenants with the most of them in each
	// reported queue as <ns>_queue_tenant_waiting_jobs{queue,tenant_id},
	// and the queue's other waiting jobs (other tenants', and those of no
	// tenant) under tenant_id OtherTenants: at most TopTenants+1 series
	// per queue however many tenants there are. The candidates come from
	// Tenants. Defaults to 0: off.
	TopTenants int
	// Tenants lists the candidate tenants of TopTenants, e.g. the tenants
	// registry's ids. Each costs one broker read per queue per scrape.
	Tenants func(ctx context.Context) ([]string, error)
	// ScrapeTimeout bounds the broker reads of one scrape. Defaults to 5s.
	ScrapeTimeout time.Duration
}

// WorkerMetrics collects a Manager's metrics: the seed's WorkerMetrics. It
// is a prometheus.Collector; register it with a Registry. Safe for
// concurrent use.
type WorkerMetrics struct {
	cfg    Config
	tenant *tenantLabels // nil: no tenant_id label

	processed, completed, failed, retried, dead *prometheus.CounterVec
	seconds                                     *prometheus.HistogramVec

	queueJobs, oldestAge, paused, busy, concurrency, utilization, stuck, brokerUp, dataLoss, tenantPending, tenantWaiting *prometheus.Desc

	mu      sync.Mutex
	manager *worker.Manager
	totals  Snapshot
	sum     time.Duration // processing time of the attempts counted in totals
}

// New returns WorkerMetrics configured by cfg.
func New(cfg Config) *WorkerMetrics {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Buckets == nil {
		cfg.Buckets = prometheus.DefBuckets
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = 5 * time.Second
	}
	labels := []string{"queue", "type"}
	if cfg.TenantLabelLimit > 0 {
		labels = append(labels, "tenant_id")
	}
	ns := cfg.Namespace
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
	}
	w := &WorkerMetrics{
		cfg:       cfg,
		tenant:    newTenantLabels(cfg.TenantLabelLimit),
		processed: counter("jobs_processed_total", "Job attempts that ran to an outcome (completed or failed)."),
		completed: counter("jobs_completed_total", "Job attempts that completed successfully."),
		failed:    counter("jobs_failed_total", "Job attempts that failed (retried or dead)."),
		retried:   counter("jobs_retried_total", "Failed job attempts scheduled for another try."),
		dead:      counter("jobs_dead_total", "Failed job attempts that left the job dead."),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "job_processing_seconds",
			Help: "Processor run time of job attempts that ran to an outcome.", Buckets: cfg.Buckets}, labels),
		queueJobs:   gauge("queue_jobs", "Jobs in a queue by state, read from the broker at scrape time.", "queue", "state"),
		oldestAge:   gauge("queue_oldest_pending_age_seconds", "How long the longest-waiting pending job has been due; 0 when none is pending.", "queue"),
		paused:      gauge("queue_paused", "1 while the queue is paused.", "queue"),
		busy:        gauge("manager_busy", "Jobs running in the Manager now."),
		concurrency: gauge("manager_concurrency", "The most jobs the Manager runs at once."),
		utilization: gauge("manager_utilization", "Busy divided by concurrency, in [0, 1]."),
		stuck: gauge("manager_stuck_processors", "Processors that ran on past their context's end and the abandon grace, and have not returned:"+
			" their attempts were ended without them, each still holds a run slot."),
		tenantPending: gauge("queue_tenant_pending_jobs", "Pending jobs of a tenant in a queue (Config.WaitingTenants only).",
			"queue", "tenant_id"),
		tenantWaiting: gauge("queue_tenant_waiting_jobs", "Waiting (pending and scheduled) jobs of the tenants with the most in a queue (Config.TopTenants), the rest summed under tenant_id \"other\".",
			"queue", "tenant_id"),
		brokerUp: gauge("broker_up", "1 if every queue's stats could be read from the broker during this scrape."),
		dataLoss: gauge("broker_data_loss_total", "Times the broker detected that its store lost or rolled back data"+
			" (a queue emptied or restored from an older snapshot); any increase needs an operator."),
	}
	w.initCounters(cfg.Queues)
	return w
}

// initCounters starts the counters of queues × Config.Types at zero.
// Without the tenant label only: the tenants are not known up front.
func (w *WorkerMetrics) initCounters(queues []string) {
	if w.tenant != nil {
		return
	}
	for _, q := range queues {
		for _, t := range w.cfg.Types {
			for _, c := range w.counters() {
				c.WithLabelValues(q, t)
			}
			w.seconds.WithLabelValues(q, t)
		}
	}
}

func (w *WorkerMetrics) counters() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{w.processed, w.completed, w.failed, w.retried, w.dead}
}

// Attach sets the Manager whose utilization is reported (and whose queues
// are, unless Config.Queues is set). Call it once the Manager exists.
func (w *WorkerMetrics) Attach(m *worker.Manager) {
	w.mu.Lock()
	w.manager = m
	w.mu.Unlock()
	if len(w.cfg.Queues) == 0 {
		w.initCounters(queueNames(m))
	}
}

// queueNames returns the names of m's queues.
func queueNames(m *worker.Manager) []string {
	var names []string
	for _, q := range m.Config().Queues {
		names = append(names, q.Name)
	}
	return names
}

// Observe counts one Manager event. Pass it as worker.ManagerConfig.OnEvent
// (or call it from your own hook).
func (w *WorkerMetrics) Observe(e worker.Event) {
	if e.Job == nil {
		return
	}
	var outcome []*prometheus.CounterVec
	switch e.Kind {
	case worker.EventCompleted:
		outcome = []*prometheus.CounterVec{w.processed, w.completed}
	case worker.EventRetrying:
		outcome = []*prometheus.CounterVec{w.processed, w.failed, w.retried}
	case worker.EventDead:
		outcome = []*prometheus.CounterVec{w.processed, w.failed, w.dead}
	default:
		return
	}
	labels := []string{e.Job.Queue, e.Job.Type}
	if w.tenant != nil {
		labels = append(labels, w.tenant.value(e.Job.TenantID))
	}
	for _, c := range outcome {
		c.WithLabelValues(labels...).Inc()
	}
	w.seconds.WithLabelValues(labels...).Observe(e.Duration.Seconds())

	w.mu.Lock()
	defer w.mu.Unlock()
	w.totals.JobsProcessed++
	w.sum += e.Duration
	switch e.Kind {
	case worker.EventCompleted:
		w.totals.JobsCompleted++
	case worker.EventRetrying:
		w.totals.JobsFailed++
		w.totals.JobsRetried++
	case worker.EventDead:
		w.totals.JobsFailed++
		w.totals.JobsDead++
	}
}

// Describe sends every metric's description.
func (w *WorkerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range w.counters() {
		c.Describe(ch)
	}
	w.seconds.Describe(ch)
	for _, d := range []*prometheus.Desc{w.queueJobs, w.oldestAge, w.paused, w.busy, w.concurrency, w.utilization, w.stuck, w.brokerUp, w.dataLoss, w.tenantPending, w.tenantWaiting} {
		ch <- d
	}
}

// Collect sends the counters and reads the gauges from the broker and the
// Manager. A queue whose stats cannot be read is left out and broker_up is
// 0, so a down broker never fails the whole scrape.
func (w *WorkerMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range w.counters() {
		c.Collect(ch)
	}
	w.seconds.Collect(ch)
	if busy, conc, stuck, ok := w.load(); ok {
		ch <- prometheus.MustNewConstMetric(w.busy, prometheus.GaugeValue, float64(busy))
		ch <- prometheus.MustNewConstMetric(w.concurrency, prometheus.GaugeValue, float64(conc))
		ch <- prometheus.MustNewConstMetric(w.utilization, prometheus.GaugeValue, utilization(busy, conc))
		ch <- prometheus.MustNewConstMetric(w.stuck, prometheus.GaugeValue, float64(stuck))
	}
	if w.cfg.Broker == nil {
		return
	}
	if r, ok := w.cfg.Broker.(broker.DataLossReporter); ok {
		ch <- prometheus.MustNewConstMetric(w.dataLoss, prometheus.CounterValue, float64(r.DataLoss().Count))
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ScrapeTimeout)
	defer cancel()
	stats, err := w.queueStats(ctx)
	if err == nil {
		err = w.collectTenants(ctx, ch, stats)
	}
	if err == nil {
		err = w.collectTopTenants(ctx, ch, stats)
	}
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(w.brokerUp, prometheus.GaugeValue, up)
	now := time.Now()
	for _, st := range stats {
		for _, s := range broker.States {
			ch <- prometheus.MustNewConstMetric(w.queueJobs, prometheus.GaugeValue, float64(st.Count(s)), st.Queue, string(s))
		}
		ch <- prometheus.MustNewConstMetric(w.oldestAge, prometheus.GaugeValue, oldestAge(st, now).Seconds(), st.Queue)
		p := 0.0
		if st.Paused {
			p = 1
		}
		ch <- prometheus.MustNewConstMetric(w.paused, prometheus.GaugeValue, p, st.Queue)
	}
}

// load returns the attached Manager's busy count, concurrency and stuck
// count.
func (w *WorkerMetrics) load() (busy, concurrency, stuck int, ok bool) {
	w.mu.Lock()
	m := w.manager
	w.mu.Unlock()
	if m == nil {
		return 0, 0, 0, false
	}
	return m.Busy(), m.Concurrency(), m.Stuck(), true
}

func utilization(busy, concurrency int) float64 {
	if concurrency <= 0 {
		return 0
	}
	return min(max(float64(busy)/float64(concurrency), 0), 1)
}

func oldestAge(st *broker.QueueStats, now time.Time) time.Duration {
	if st.OldestPendingAt.IsZero() {
		return 0
	}
	return max(now.Sub(st.OldestPendingAt), 0)
}

// queues returns the queue names to report.
func (w *WorkerMetrics) queues(ctx context.Context) ([]string, error) {
	if len(w.cfg.Queues) > 0 {
		return w.cfg.Queues, nil
	}
	w.mu.Lock()
	m := w.manager
	w.mu.Unlock()
	if m != nil {
		return queueNames(m), nil
	}
	names, err := w.cfg.Broker.QueueList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return names, nil
}

// queueStats reads every reported queue's stats. It returns the ones it
// could read and the first error.
func (w *WorkerMetrics) queueStats(ctx context.Context) ([]*broker.QueueStats, error) {
	names, err := w.queues(ctx)
	if err != nil {
		return nil, err
	}
	var out []*broker.QueueStats
	var first error
	for _, q := range names {
		st, err := w.cfg.Broker.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
		if err != nil {
			if first == nil {
				first = fmt.Errorf("stats of queue %q: %w", q, err)
			}
			continue
		}
		out = append(out, st)
	}
	return out, first
}

// collectTenants sends the pending jobs of each of Config.WaitingTenants
// in each queue of stats, and returns the first read error.
func (w *WorkerMetrics) collectTenants(ctx context.Context, ch chan<- prometheus.Metric, stats []*broker.QueueStats) error {
	for _, st := range stats {
		for _, tenant := range w.cfg.WaitingTenants {
			ts, err := w.cfg.Broker.QueueStats(ctx, &broker.QueueStatsParams{Queue: st.Queue, TenantID: tenant})
			if err != nil {
				return fmt.Errorf("stats of tenant %q in queue %q: %w", tenant, st.Queue, err)
			}
			ch <- prometheus.MustNewConstMetric(w.tenantPending, prometheus.GaugeValue, float64(ts.Count(broker.StatePending)), st.Queue, tenant)
		}
	}
	return nil
}
