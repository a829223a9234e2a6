package service

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	worker "github.com/aibos/worker"
)

// promhttpHandler serves the registry's metrics.
func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// httpProcessor builds the processor that POSTs jobs of jobType to e.
func (s *Service) httpProcessor(jobType string, e *Endpoint) (worker.Processor, error) {
	return nil, &ConfigError{Where: "config file " + s.cfg.File, Name: "job_types." + jobType + ".http",
		Want: "HTTP endpoint processors are not in this build yet (package httpproc)"}
}
