package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/retry"
)

// LinkKind is the attribute that says what a consumer span's link points
// at: "producer" (the add) or "previous_attempt".
const LinkKind = attribute.Key("aibos_worker.link")

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
			t.remember(job, span.SpanContext(), err)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
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
	if prev, ok := t.previous(job); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: prev, Attributes: []attribute.KeyValue{LinkKind.String("previous_attempt")}}))
	}
	return t.tracer.Start(ctx, "process "+job.Queue, opts...)
}

func attemptKey(job *worker.Job) string { return job.Queue + "\x00" + job.ID }

// previous returns the span of job's attempt before this one, if this
// process ran it.
func (t *Tracer) previous(job *worker.Job) (trace.SpanContext, bool) {
	if job.Attempt <= 1 {
		return trace.SpanContext{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	sc, ok := t.tries[attemptKey(job)]
	return sc, ok
}

// remember keeps a failed attempt's span for the retry's link, and
// forgets the job once it can have no further attempt.
func (t *Tracer) remember(job *worker.Job, sc trace.SpanContext, err error) {
	key := attemptKey(job)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil || job.Attempt >= job.MaxAttempts || retry.IsNoRetry(err) || !sc.IsValid() {
		delete(t.tries, key)
		return
	}
	if _, ok := t.tries[key]; !ok && len(t.tries) >= t.max {
		for k := range t.tries { // drop any one: a lost link, never a lost job
			delete(t.tries, k)
			break
		}
	}
	t.tries[key] = sc
}
