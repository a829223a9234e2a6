package tracing

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
)

// LinkKind is the attribute that says what a consumer span's link points
// at: "producer" (the add) or "previous_attempt".
const LinkKind = attribute.Key("aibos_worker.link")

// PreviousAttemptPrefix prefixes the job headers that carry the span
// context of the job's last failed attempt ("previous-attempt-traceparent"
// with W3C Trace Context), stored with the failure (worker.SetFailHeaders).
const PreviousAttemptPrefix = "previous-attempt-"

// Middleware returns the Manager middleware that runs each attempt in a
// consumer span, a child of the job's producer span that also links to it,
// and to the attempt before it (see the package documentation). Pass it
// to worker.Manager.Use, first, so that the other middleware run inside
// the span.
func (t *Tracer) Middleware() worker.Middleware {
	return func(next worker.Processor) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
			ctx, span := t.startAttempt(ctx, job)
			defer span.End()
			err := next.Process(ctx, job)
			if err != nil {
				msg := t.enc.ErrorText(job, err)
				if msg == err.Error() {
					span.RecordError(err)
				} else {
					span.RecordError(errors.New(msg))
				}
				span.SetStatus(codes.Error, msg)
				t.storeAttempt(ctx, span.SpanContext())
			}
			return err
		})
	}
}

// startAttempt starts job's consumer span.
func (t *Tracer) startAttempt(ctx context.Context, job *worker.Job) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		systemAttr, semconv.MessagingOperationTypeProcess, semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(job.Queue), semconv.MessagingMessageID(job.ID),
		AttrJobType.String(job.Type), AttrJobAttempt.Int(job.Attempt),
	)}
	producer := trace.SpanContextFromContext(t.prop.Extract(context.Background(), propagation.MapCarrier(job.Headers)))
	if producer.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, producer)
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: producer, Attributes: []attribute.KeyValue{LinkKind.String("producer")}}))
	}
	if job.Attempt > 1 {
		prev := trace.SpanContextFromContext(t.prop.Extract(context.Background(), previousCarrier(job.Headers)))
		if prev.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: prev, Attributes: []attribute.KeyValue{LinkKind.String("previous_attempt")}}))
		}
	}
	return t.tracer.Start(ctx, "process "+job.Queue, opts...)
}

// storeAttempt has a failed attempt's span context stored with the job's
// failure, under PreviousAttemptPrefix, so that the next attempt links to
// it on whichever worker runs it. Only failures pay for it, and only when
// tracing is on.
func (t *Tracer) storeAttempt(ctx context.Context, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	h := previousCarrier{}
	t.prop.Inject(trace.ContextWithSpanContext(context.Background(), sc), h)
	// The only error is a context run outside a Manager (a test calling
	// the middleware directly): there is no failure to store it with.
	_ = worker.SetFailHeaders(ctx, h)
}

// previousCarrier reads and writes the previous attempt's trace context in
// job headers, under PreviousAttemptPrefix.
type previousCarrier map[string]string

func (c previousCarrier) Get(key string) string { return c[PreviousAttemptPrefix+key] }

func (c previousCarrier) Set(key, value string) { c[PreviousAttemptPrefix+key] = value }

func (c previousCarrier) Keys() []string {
	var keys []string
	for k := range c {
		if rest, ok := strings.CutPrefix(k, PreviousAttemptPrefix); ok {
			keys = append(keys, rest)
		}
	}
	return keys
}
