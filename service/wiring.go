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
