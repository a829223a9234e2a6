package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// EndpointMetrics counts the calls made to the application's HTTP
// endpoints (package httpproc) through its Transport:
//
//	<ns>_endpoint_calls_total{endpoint,instance,code}  code 2xx|3xx|4xx|5xx|error (no response)
//
// It is a prometheus.Collector; safe for concurrent use.
type EndpointMetrics struct {
	calls *prometheus.CounterVec
}

// NewEndpointMetrics returns EndpointMetrics. namespace defaults to
// "aibos_worker".
func NewEndpointMetrics(namespace string) *EndpointMetrics {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &EndpointMetrics{calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "endpoint_calls_total",
		Help: "Calls to application endpoints, by endpoint, instance (host:port) and status class."}, []string{"endpoint", "instance", "code"})}
}

// Transport returns an http.RoundTripper that counts every request made
// through base (http.DefaultTransport when nil) under the endpoint name
// (e.g. the job type). instances, when given, start at zero.
func (m *EndpointMetrics) Transport(endpoint string, base http.RoundTripper, instances ...string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	for _, in := range instances {
		m.calls.WithLabelValues(endpoint, in, "2xx")
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		code := "error"
		if err == nil {
			code = statusClass(resp.StatusCode)
		}
		m.calls.WithLabelValues(endpoint, req.URL.Host, code).Inc()
		return resp, err
	})
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "error"
	}
	return string(rune('0'+code/100)) + "xx"
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Describe sends every metric's description.
func (m *EndpointMetrics) Describe(ch chan<- *prometheus.Desc) { m.calls.Describe(ch) }

// Collect sends every metric.
func (m *EndpointMetrics) Collect(ch chan<- prometheus.Metric) { m.calls.Collect(ch) }
