package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aibos/worker/workflow"
)

// WorkflowMetrics counts workflow runs and times their steps, from an
// Engine's events. It is a prometheus.Collector; safe for concurrent use.
//
//	<ns>_workflow_runs_started_total{workflow}
//	<ns>_workflow_runs_succeeded_total{workflow}
//	<ns>_workflow_runs_failed_total{workflow}
//	<ns>_workflow_runs_compensated_total{workflow}  failed runs whose compensations all completed
//	<ns>_workflow_step_seconds{workflow,step,outcome} step processor time; outcome completed|failed|compensated|compensation_failed
//
// Run outcomes are counted by the process whose transition made them, so
// summing over instances counts each run once.
type WorkflowMetrics struct {
	started, succeeded, failed, compensated *prometheus.CounterVec
	steps                                   *prometheus.HistogramVec
}

// NewWorkflowMetrics returns WorkflowMetrics. namespace defaults to
// "aibos_worker"; buckets to prometheus.DefBuckets.
func NewWorkflowMetrics(namespace string, buckets []float64) *WorkflowMetrics {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if buckets == nil {
		buckets = prometheus.DefBuckets
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "workflow", Name: name, Help: help},
			[]string{"workflow"})
	}
	w := &WorkflowMetrics{
		started:     counter("runs_started_total", "Workflow runs started."),
		succeeded:   counter("runs_succeeded_total", "Workflow runs whose last step completed."),
		failed:      counter("runs_failed_total", "Workflow runs failed by a step that died."),
		compensated: counter("runs_compensated_total", "Failed workflow runs whose compensations all completed."),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "workflow", Name: "step_seconds",
			Help: "Run time of workflow step (and compensation) attempts.", Buckets: buckets}, []string{"workflow", "step", "outcome"}),
	}
	return w
}

// Init starts the run counters of the named workflows at zero, so that
// rate() and alerts see them before their first run. Call it as they are
// registered.
func (w *WorkflowMetrics) Init(workflows ...string) {
	for _, name := range workflows {
		for _, c := range w.counters() {
			c.WithLabelValues(name)
		}
	}
}

func (w *WorkflowMetrics) counters() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{w.started, w.succeeded, w.failed, w.compensated}
}

// Observe counts one Engine event. Pass it as workflow.Config.OnEvent.
func (w *WorkflowMetrics) Observe(e workflow.Event) {
	switch e.Kind {
	case workflow.EventRunStarted:
		w.started.WithLabelValues(e.Workflow).Inc()
	case workflow.EventRunSucceeded:
		w.succeeded.WithLabelValues(e.Workflow).Inc()
	case workflow.EventRunFailed:
		w.failed.WithLabelValues(e.Workflow).Inc()
	case workflow.EventRunCompensated:
		w.compensated.WithLabelValues(e.Workflow).Inc()
	case workflow.EventStepFinished:
		outcome := "completed"
		switch {
		case e.Compensating && e.Err != nil:
			outcome = "compensation_failed"
		case e.Compensating:
			outcome = "compensated"
		case e.Err != nil:
			outcome = "failed"
		}
		w.steps.WithLabelValues(e.Workflow, e.Step, outcome).Observe(e.Duration.Seconds())
	}
}

// Describe sends every metric's description.
func (w *WorkflowMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range w.counters() {
		c.Describe(ch)
	}
	w.steps.Describe(ch)
}

// Collect sends every metric.
func (w *WorkflowMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range w.counters() {
		c.Collect(ch)
	}
	w.steps.Collect(ch)
}
