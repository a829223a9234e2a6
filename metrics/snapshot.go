package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

// Snapshot is the seed's metrics object: what GetMetrics returns.
type Snapshot struct {
	// Counts of job attempts since the WorkerMetrics was made (see the
	// package doc for how they relate).
	JobsProcessed int64 `json:"jobs_processed"`
	JobsCompleted int64 `json:"jobs_completed"`
	JobsFailed    int64 `json:"jobs_failed"`
	JobsRetried   int64 `json:"jobs_retried"`
	JobsDead      int64 `json:"jobs_dead"`
	// AvgProcessingTime is the mean processor run time of those attempts.
	AvgProcessingTime time.Duration `json:"avg_processing_time"`
	// QueueLength is the number of waiting jobs (pending + scheduled) over
	// the reported queues: the seed's getLength summed.
	QueueLength int64 `json:"queue_length"`
	// Queues holds each reported queue's stats.
	Queues []broker.QueueStats `json:"queues"`
	// Busy, Concurrency and Utilization (busy ÷ concurrency, in [0, 1])
	// describe the attached Manager; zero without one.
	Busy        int     `json:"busy"`
	Concurrency int     `json:"concurrency"`
	Utilization float64 `json:"utilization"`
}

// GetMetrics returns the current snapshot. The counters come from the
// events observed; queue figures are read from the broker now. If the
// broker cannot be read, the snapshot holds what could be read and the
// error says what failed.
func (w *WorkerMetrics) GetMetrics(ctx context.Context) (*Snapshot, error) {
	w.mu.Lock()
	s := w.totals
	if s.JobsProcessed > 0 {
		s.AvgProcessingTime = w.sum / time.Duration(s.JobsProcessed)
	}
	w.mu.Unlock()
	if busy, conc, _, ok := w.load(); ok {
		s.Busy, s.Concurrency, s.Utilization = busy, conc, utilization(busy, conc)
	}
	if w.cfg.Broker == nil {
		return &s, nil
	}
	stats, err := w.queueStats(ctx)
	for _, st := range stats {
		s.Queues = append(s.Queues, *st)
		s.QueueLength += st.Pending + st.Scheduled
	}
	if err != nil {
		return &s, fmt.Errorf("metrics: read queue stats: %w", err)
	}
	return &s, nil
}
