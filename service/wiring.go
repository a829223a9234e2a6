package service

import (
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/scale"
)

// promhttpHandler serves the registry's metrics.
func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// httpProcessor builds the processor that POSTs jobs of jobType to e,
// signed; with instances, through a Balancer of its own (started with the
// service) whose per-node metrics carry the job type as balancer name.
func (s *Service) httpProcessor(jobType string, e *Endpoint) (worker.Processor, error) {
	name := "job_types." + jobType + ".http"
	cfg := httpproc.EndpointConfig{Secret: e.Secret, Timeout: e.Timeout, Headers: e.Headers, Client: s.obs.httpClient(jobType, e)}
	if len(e.Instances) == 0 {
		cfg.URL = e.URL
	} else {
		u, err := url.Parse(e.URL)
		if err != nil {
			return nil, s.fileError(name+".url", reason(err))
		}
		cfg.Scheme, cfg.Path = u.Scheme, u.EscapedPath()
		nodes := make([]scale.Node, len(e.Instances))
		for i, in := range e.Instances {
			nodes[i] = scale.Node{Addr: in}
		}
		bal, err := scale.NewBalancer(scale.BalancerConfig{
			Algorithm: scale.Algorithm(e.Algorithm), Nodes: nodes, Name: jobType, Registerer: s.registerer(), Logger: s.log,
			HealthCheck: scale.HealthCheck{Path: e.HealthPath, Scheme: u.Scheme},
		})
		if err != nil {
			return nil, s.fileError(name, err.Error())
		}
		s.balancers = append(s.balancers, bal)
		cfg.Instances = bal
	}
	p, err := httpproc.New(cfg)
	if err != nil {
		return nil, s.fileError(name, err.Error())
	}
	return p, nil
}

// fileError is a *ConfigError about a key of the config file.
func (s *Service) fileError(name, want string) error {
	return &ConfigError{Where: "config file " + s.cfg.File, Name: name, Want: want}
}

// registerer is where the parts register their metrics: nil (none) when
// monitoring is off.
func (s *Service) registerer() prometheus.Registerer {
	if s.reg == nil {
		return nil
	}
	return s.reg
}

// newCallbacks builds the completion callbacks the configuration asks
// for, or nil.
func (s *Service) newCallbacks() (*httpproc.Callbacks, error) {
	cb := s.cfg.Callbacks
	if cb == nil {
		return nil, nil
	}
	c, err := httpproc.NewCallbacks(s.store.b, httpproc.CallbackConfig{
		URL: cb.URL, Secret: cb.Secret, Headers: cb.Headers, Timeout: cb.Timeout, MaxAttempts: cb.MaxAttempts,
		Encryption: s.manager.Config().Encryption,
	})
	if err != nil {
		return nil, s.fileError("callbacks", err.Error())
	}
	return c, nil
}

// newScaler builds the WorkerScaler the configuration asks for, or nil.
func (s *Service) newScaler() (*scale.Scaler, error) {
	sc := s.cfg.Scaling
	if sc == nil || !sc.Enabled {
		return nil, nil
	}
	scaler, err := scale.New(s.manager, scale.Config{
		MinWorkers: sc.MinWorkers, MaxWorkers: sc.MaxWorkers,
		ScaleUpThreshold: sc.ScaleUpThreshold, ScaleDownThreshold: sc.ScaleDownThreshold,
		ScaleUpCooldown: sc.ScaleUpCooldown, ScaleDownCooldown: sc.ScaleDownCooldown,
		Interval: sc.Interval, LatencyThreshold: sc.LatencyThreshold,
		Stats: s.store.b, Registerer: s.registerer(), Logger: s.log,
	})
	if err != nil {
		return nil, s.fileError("scaling", err.Error())
	}
	return scaler, nil
}

// newChecker returns the health checks: the broker and the Manager are
// critical; each queue's waiting jobs over QueueHealthThreshold is a
// warning (degraded, never unready: a backlog must not take every pod out
// of service). Start runs them every HEALTH_CHECK_INTERVAL in the
// background, and /readyz and /health serve the latest report.
func (s *Service) newChecker() *health.Checker {
	checks := []health.Check{health.Ping(s.store.b), health.NotDraining(s.manager)}
	for _, q := range s.cfg.Queues {
		checks = append(checks, health.QueueLength(s.store.b, q.Name, QueueHealthThreshold))
	}
	return &health.Checker{Checks: checks, Interval: s.cfg.HealthCheckInterval}
}

// QueueHealthThreshold is the seed's queue-health threshold: more waiting
// jobs than this make a queue's check degraded.
const QueueHealthThreshold = 1000
