package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of a workflow run's span (the step attempts' spans carry
// the workflow ones too, and the step's name).
const (
	AttrWorkflow   = attribute.Key("aibos_worker.workflow.name")
	AttrRunID      = attribute.Key("aibos_worker.workflow.run_id")
	AttrRunCreated = attribute.Key("aibos_worker.workflow.run_created")
	AttrTenant     = attribute.Key("aibos_worker.tenant.id")
)

// StartRun starts the span "workflow <name>" of one workflow.Engine.Execute:
// a producer span, since creating the run enqueues its first steps, and
// every job of the run carries its context. It makes Tracer a
// workflow.RunTracer: pass it as workflow.Config.Tracer.
func (t *Tracer) StartRun(ctx context.Context, queue, workflow, tenant string) (context.Context, func(runID string, created bool, err error)) {
	attrs := []attribute.KeyValue{systemAttr, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("execute"),
		semconv.MessagingDestinationName(queue), AttrWorkflow.String(workflow)}
	if tenant != "" {
		attrs = append(attrs, AttrTenant.String(tenant))
	}
	ctx, span := t.tracer.Start(ctx, "workflow "+workflow, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return ctx, func(runID string, created bool, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(AttrRunID.String(runID), AttrRunCreated.Bool(created))
		}
		span.End()
	}
}
