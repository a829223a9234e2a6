package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aibos/worker/schedule"
)

// CronMetrics counts the cron ticks a scheduler claimed, from its
// schedule.Config.OnTick events. It is a prometheus.Collector; safe for
// concurrent use.
//
//	<ns>_cron_ticks_claimed_total{schedule,status}  status ok|unique_held|queue_full
//	<ns>_cron_ticks_missed_total{schedule}          fire times that got no job of their own
//	<ns>_cron_tick_late_seconds{schedule}           how long after its time each tick was claimed
//
// Each tick is claimed by one scheduler, so summing over instances counts
// it once.
type CronMetrics struct {
	claimed, missed *prometheus.CounterVec
	late            *prometheus.HistogramVec
}

// DefaultLateBuckets are CronMetrics' default late-seconds buckets: a
// tick is normally claimed within a poll interval (1s).
var DefaultLateBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// NewCronMetrics returns CronMetrics with the counters at zero for the
// named schedules. namespace defaults to "aibos_worker"; buckets to
// DefaultLateBuckets.
func NewCronMetrics(namespace string, buckets []float64, schedules ...string) *CronMetrics {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if buckets == nil {
		buckets = DefaultLateBuckets
	}
	c := &CronMetrics{
		claimed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "cron", Name: "ticks_claimed_total",
			Help: "Cron ticks this scheduler claimed, by claim status."}, []string{"schedule", "status"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "cron", Name: "ticks_missed_total",
			Help: "Cron fire times that got no job of their own (down time, skip policy, or covered by one catch-up job)."}, []string{"schedule"}),
		late: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "cron", Name: "tick_late_seconds",
			Help: "How long after its fire time each cron tick was claimed, on the broker's clock.", Buckets: buckets}, []string{"schedule"}),
	}
	for _, s := range schedules {
		c.claimed.WithLabelValues(s, "ok")
		c.missed.WithLabelValues(s)
	}
	return c
}

// Observe counts one claimed tick. Pass it as schedule.Config.OnTick.
func (c *CronMetrics) Observe(e schedule.TickEvent) {
	c.claimed.WithLabelValues(e.Schedule, string(e.Status)).Inc()
	if e.Missed > 0 {
		c.missed.WithLabelValues(e.Schedule).Add(float64(e.Missed))
	}
	c.late.WithLabelValues(e.Schedule).Observe(e.Late.Seconds())
}

// Describe sends every metric's description.
func (c *CronMetrics) Describe(ch chan<- *prometheus.Desc) {
	c.claimed.Describe(ch)
	c.missed.Describe(ch)
	c.late.Describe(ch)
}

// Collect sends every metric.
func (c *CronMetrics) Collect(ch chan<- prometheus.Metric) {
	c.claimed.Collect(ch)
	c.missed.Collect(ch)
	c.late.Collect(ch)
}
