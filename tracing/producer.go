package tracing

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
)

// AddMiddleware returns the Client middleware that starts a producer span
// per add and stores its context in the added jobs' Headers. Pass it in
// worker.ClientConfig.AddMiddleware.
func (t *Tracer) AddMiddleware() worker.AddMiddleware {
	return func(next worker.AddFunc) worker.AddFunc {
		return func(ctx context.Context, queue string, specs []worker.JobSpec) ([]*worker.Job, error) {
			op := "add"
			attrs := []attribute.KeyValue{systemAttr, semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(queue)}
			if len(specs) == 1 {
				attrs = append(attrs, AttrJobType.String(specs[0].Type))
			} else {
				op = "add_many"
				attrs = append(attrs, semconv.MessagingBatchMessageCount(len(specs)))
			}
			attrs = append(attrs, semconv.MessagingOperationName(op))
			ctx, span := t.tracer.Start(ctx, "send "+queue, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
			defer span.End()
			carrier := propagation.MapCarrier{}
			t.prop.Inject(ctx, carrier)
			for i := range specs {
				h := maps.Clone(specs[i].Headers)
				if h == nil {
					h = make(map[string]string, len(carrier))
				}
				maps.Copy(h, carrier)
				specs[i].Headers = h
			}
			jobs, err := next(ctx, queue, specs)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				return jobs, err
			}
			if len(jobs) == 1 {
				span.SetAttributes(semconv.MessagingMessageID(jobs[0].ID))
			}
			return jobs, nil
		}
	}
}
