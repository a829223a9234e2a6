package scale

import "github.com/prometheus/client_golang/prometheus"

// balancerMetrics exports a Balancer's per-node metrics, labelled by
// balancer name and node Addr:
//
//	aibos_worker_balancer_requests_total     tries through Do
//	aibos_worker_balancer_failures_total     tries that were node failures
//	aibos_worker_balancer_node_healthy       1 while in rotation, 0 while ejected
//	aibos_worker_balancer_outstanding        tries in flight through Do
//
// The gauges are read from the Balancer's state at scrape time.
type balancerMetrics struct {
	b                    *Balancer
	requests, failures   *prometheus.CounterVec
	healthy, outstanding *prometheus.Desc
}

func newBalancerMetrics(b *Balancer) *balancerMetrics {
	const ns, sub = "aibos_worker", "balancer"
	constLabels := prometheus.Labels{"balancer": b.cfg.Name}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name,
			Help: help, ConstLabels: constLabels}, []string{"node"})
	}
	gauge := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, []string{"node"}, constLabels)
	}
	m := &balancerMetrics{
		b:           b,
		requests:    counter("requests_total", "Tries sent to the node through the balancer."),
		failures:    counter("failures_total", "Tries on the node that failed as node failures."),
		healthy:     gauge("node_healthy", "1 while the node is in rotation, 0 while it is ejected."),
		outstanding: gauge("outstanding", "Tries in flight on the node."),
	}
	// Every node has a series from the start, so a rate over a quiet node is 0, not absent.
	for _, n := range b.nodes {
		m.requests.WithLabelValues(n.Addr)
		m.failures.WithLabelValues(n.Addr)
	}
	return m
}

// Describe sends every metric's description.
func (m *balancerMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.failures.Describe(ch)
	ch <- m.healthy
	ch <- m.outstanding
}

// Collect sends the counters and each node's gauges.
func (m *balancerMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.failures.Collect(ch)
	for _, s := range m.b.Nodes() {
		healthy := 0.0
		if s.Healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, healthy, s.Addr)
		ch <- prometheus.MustNewConstMetric(m.outstanding, prometheus.GaugeValue, float64(s.Outstanding), s.Addr)
	}
}
