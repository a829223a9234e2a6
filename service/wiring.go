package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/health"
	"github.com/aibos/worker/scale"
)

// promhttpHandler serves the registry's metrics.
func promhttpHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// httpProcessor builds the processor that POSTs jobs of jobType to e.
//
// Interim until package httpproc is merged: a plain POST of the job as
// JSON, 2xx completes and anything else is a failed attempt. It cannot
// sign, so an endpoint with a secret or several instances is refused
// rather than called unsigned or unbalanced.
func (s *Service) httpProcessor(jobType string, e *Endpoint) (worker.Processor, error) {
	if e.Secret != "" || len(e.Instances) > 0 {
		return nil, &ConfigError{Where: "config file " + s.cfg.File, Name: "job_types." + jobType + ".http",
			Want: "signed or balanced endpoints need package httpproc, not in this build yet"}
	}
	client := &http.Client{Timeout: e.Timeout}
	return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
		body, err := json.Marshal(map[string]any{
			"id": job.ID, "type": job.Type, "queue": job.Queue, "tenantId": job.TenantID, "companyId": job.CompanyID,
			"attempt": job.Attempt, "maxAttempts": job.MaxAttempts, "data": json.RawMessage(job.Data),
		})
		if err != nil {
			return fmt.Errorf("encode job: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("post job to %s: %w", RedactURL(e.URL), err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("post job to %s: status %d", RedactURL(e.URL), resp.StatusCode)
		}
		return nil
	}), nil
}

// newScaler builds the WorkerScaler the configuration asks for, or nil.
func (s *Service) newScaler() (*scale.Scaler, error) {
	sc := s.cfg.Scaling
	if sc == nil || !sc.Enabled {
		return nil, nil
	}
	var reg prometheus.Registerer
	if s.reg != nil {
		reg = s.reg
	}
	scaler, err := scale.New(s.manager, scale.Config{
		MinWorkers: sc.MinWorkers, MaxWorkers: sc.MaxWorkers,
		ScaleUpThreshold: sc.ScaleUpThreshold, ScaleDownThreshold: sc.ScaleDownThreshold,
		ScaleUpCooldown: sc.ScaleUpCooldown, ScaleDownCooldown: sc.ScaleDownCooldown,
		Interval: sc.Interval, LatencyThreshold: sc.LatencyThreshold,
		Stats: s.store.b, Registerer: reg, Logger: s.log,
	})
	if err != nil {
		return nil, &ConfigError{Where: "config file " + s.cfg.File, Name: "scaling", Want: err.Error()}
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
