package service

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/metrics"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/tracing"
	"github.com/aibos/worker/workflow"
)

// observability is the service's tracing (OTEL_TRACES_EXPORTER) and the
// metrics of its workflows, schedules and endpoints (MONITORING_ENABLED);
// a part that is off is nil and costs nothing.
type observability struct {
	tracer    *tracing.Tracer
	provider  *sdktrace.TracerProvider
	workflows *metrics.WorkflowMetrics
	cron      *metrics.CronMetrics
	endpoints *metrics.EndpointMetrics
}

// newObservability builds what c turns on. The OTLP exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables, the provider OTEL_TRACES_SAMPLER
// and the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: they are
// the SDK's documented interface, so the service passes them through rather
// than naming each again.
func newObservability(c *Config, enc *worker.Encryption) (*observability, error) {
	o := &observability{}
	if c.TracesExporter == "otlp" {
		ctx := context.Background()
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, &ConfigError{Name: "OTEL_TRACES_EXPORTER", Want: fmt.Sprintf("an OTLP exporter the OTEL_EXPORTER_OTLP_* variables configure: %v", err)}
		}
		res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName("aibos-worker")), resource.WithFromEnv(), resource.WithTelemetrySDK())
		if err != nil {
			return nil, &ConfigError{Name: "OTEL_RESOURCE_ATTRIBUTES", Want: err.Error()}
		}
		o.provider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		if o.tracer, err = tracing.New(tracing.Config{TracerProvider: o.provider, Encryption: enc}); err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
	}
	if c.MonitoringEnabled {
		var names []string
		for _, s := range c.Schedules {
			names = append(names, s.Name)
		}
		o.workflows = metrics.NewWorkflowMetrics("", nil)
		o.cron = metrics.NewCronMetrics("", nil, names...)
		o.endpoints = metrics.NewEndpointMetrics("")
	}
	return o, nil
}

// register adds the metrics to reg, with build_info.
func (o *observability) register(reg *prometheus.Registry) {
	if o.workflows != nil {
		reg.MustRegister(o.workflows, o.cron, o.endpoints, metrics.NewBuildInfo(""))
	}
}

func (o *observability) client(cfg *worker.ClientConfig) {
	if o.tracer != nil {
		cfg.AddMiddleware = append(cfg.AddMiddleware, o.tracer.AddMiddleware())
	}
}

// manager traces m's jobs; call it before anything else is Used on m, so
// that every middleware runs inside the attempt's span.
func (o *observability) manager(m *worker.Manager) {
	if o.tracer != nil {
		m.Use(o.tracer.Middleware())
	}
}

func (o *observability) workflow(cfg *workflow.Config) {
	if o.tracer != nil {
		cfg.Tracer = o.tracer
	}
	if o.workflows != nil {
		cfg.OnEvent = o.workflows.Observe
	}
}

func (o *observability) schedule(cfg *schedule.Config) {
	if o.tracer != nil {
		cfg.Tracer = o.tracer
	}
	if o.cron != nil {
		cfg.OnTick = o.cron.Observe
	}
}

// httpClient returns the client of the endpoint of jobType, counted and
// traced when those are on, or nil (httpproc's default) when both are off.
func (o *observability) httpClient(jobType string, e *Endpoint) *http.Client {
	if o.tracer == nil && o.endpoints == nil {
		return nil
	}
	var rt http.RoundTripper = http.DefaultTransport
	if o.endpoints != nil {
		instances := e.Instances
		if len(instances) == 0 {
			if u, err := url.Parse(e.URL); err == nil {
				instances = []string{u.Host}
			}
		}
		rt = o.endpoints.Transport(jobType, rt, instances...)
	}
	if o.tracer != nil {
		rt = o.tracer.Transport(rt)
	}
	return &http.Client{Transport: rt}
}

// shutdown sends the spans still buffered.
func (o *observability) shutdown(ctx context.Context) error {
	if o.provider == nil {
		return nil
	}
	if err := o.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("service: flush traces: %w", err)
	}
	return nil
}
