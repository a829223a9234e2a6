// Package tracing traces jobs with OpenTelemetry: a producer span for every
// add, a consumer span for every attempt, and a client span for every HTTP
// call the jobs make, all in the enqueuer's trace.
//
// Wiring:
//
//	t, _ := tracing.New(tracing.Config{TracerProvider: tp})
//	client, _ := worker.NewClient(b, worker.ClientConfig{AddMiddleware: []worker.AddMiddleware{t.AddMiddleware()}})
//	m, _ := worker.NewManager(b, cfg)
//	m.Use(t.Middleware())
//	engine, _ := workflow.NewEngine(b, workflow.Config{Tracer: t})
//	cron, _ := schedule.New(b, schedule.Config{Tracer: t})
//	httpClient := &http.Client{Transport: t.Transport(nil)} // e.g. httpproc.EndpointConfig.Client
//
// Without a Tracer nothing is traced and nothing is paid per job: the
// Client and the Manager only check that they have no middleware.
//
// # Spans and how they connect
//
// An add (Client.Add, or one AddMany batch) starts a span "send <queue>" of
// kind producer, a child of the span in the add's context. Its context is
// stored with each job, in Headers as W3C traceparent and tracestate, so it
// reaches any worker on any machine.
//
// Each attempt of a job runs in a span "process <queue>" of kind consumer.
// Its parent is the producer span, so a job's attempts, and the jobs they
// add in turn, stay in the enqueuer's trace; it also links to the producer
// span, as the OpenTelemetry messaging conventions ask. An attempt after a
// failure also links to the span of the attempt before it
// ("previous_attempt"), whichever worker ran that attempt: a failed
// attempt's span context is stored with the failure, in the job's Headers
// under PreviousAttemptPrefix (worker.SetFailHeaders), in the same atomic
// write. Successful attempts store nothing.
//
// A workflow run is one trace, whether or not Execute's context has a
// span:
//
//	<the caller's span, if any>
//	└─ workflow <name>        producer: Engine.Execute creating the run
//	   ├─ process <queue>     consumer: step "validate", attempt 1
//	   ├─ process <queue>     consumer: step "totals" (enqueued by validate's completion)
//	   └─ process <queue>     consumer: step "post", a compensation or a hook
//
// The run's span ends when Execute returns (the run is durable then, its
// first steps enqueued); it does not last as long as the run, which may
// span hours and processes. Every job of the run carries its context, so
// each step attempt's span is its child and links to it as its producer
// ("producer"), whichever step's completion enqueued the job. It has the
// attributes messaging.operation.type "send", messaging.operation.name
// "execute", messaging.destination.name (the engine's queue),
// aibos_worker.workflow.name, aibos_worker.workflow.run_id,
// aibos_worker.workflow.run_created (false when an idempotency key
// returned an existing run, whose jobs stay in the trace that created it)
// and aibos_worker.tenant.id when the run has a tenant. Step attempts'
// spans add aibos_worker.workflow.run_id, .step and .compensating.
//
// Attributes follow the messaging conventions: messaging.system
// ("aibos_worker"), messaging.operation.type ("send" or "process"),
// messaging.operation.name ("add", "add_many" or "process"),
// messaging.destination.name (the queue), messaging.message.id (the job
// id; on a batch's span, messaging.batch.message_count instead), plus
// aibos_worker.job.type and, on consumer spans, aibos_worker.job.attempt.
// A failed add or attempt records the error and sets the span's status to
// Error.
package tracing

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
)

// ScopeName is the instrumentation scope of every span of this package.
const ScopeName = "github.com/aibos/worker/tracing"

// System is the messaging.system attribute of every job span.
const System = "aibos_worker"

// The non-standard attributes of job spans.
const (
	AttrJobType    = attribute.Key("aibos_worker.job.type")
	AttrJobAttempt = attribute.Key("aibos_worker.job.attempt")
)

// Config configures a Tracer.
type Config struct {
	// TracerProvider makes the spans. Required: with no provider, leave
	// the Tracer out instead (tracing off costs nothing then).
	TracerProvider trace.TracerProvider
	// Propagator stores and reads the trace context in job headers and
	// HTTP requests. Defaults to W3C Trace Context (traceparent,
	// tracestate).
	Propagator propagation.TextMapPropagator
	// Encryption is the Manager's: an attempt of a job it encrypts records
	// its error's kind and class in the span, not its message, which may
	// quote the sealed data (Encryption.ErrorText). Nil records every
	// message.
	Encryption *worker.Encryption
}

// Tracer makes the middleware and transport that trace jobs. It is safe
// for concurrent use.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	enc    *worker.Encryption
}

// New returns a Tracer configured by cfg.
func New(cfg Config) (*Tracer, error) {
	if cfg.TracerProvider == nil {
		return nil, errors.New("tracing: new tracer: tracer provider is nil")
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	return &Tracer{tracer: cfg.TracerProvider.Tracer(ScopeName), prop: cfg.Propagator, enc: cfg.Encryption}, nil
}

// systemAttr is messaging.system on every job span.
var systemAttr = semconv.MessagingSystemKey.String(System)

// Inject adds ctx's trace context to headers, as the producer middleware
// stores it in a job's. With StartRun it makes Tracer a workflow.RunTracer
// and, with StartTick, a schedule.TickTracer.
func (t *Tracer) Inject(ctx context.Context, headers map[string]string) {
	t.prop.Inject(ctx, propagation.MapCarrier(headers))
}
