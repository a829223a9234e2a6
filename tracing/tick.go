package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of a cron tick's span.
const (
	AttrSchedule    = attribute.Key("aibos_worker.schedule.name")
	AttrTick        = attribute.Key("aibos_worker.schedule.tick")
	AttrClaimStatus = attribute.Key("aibos_worker.schedule.claim_status")
)

// StartTick starts the span "schedule tick <name>" of one cron tick's
// claim; the tick's job, if the claim enqueues one, carries its context.
// It makes Tracer a schedule.TickTracer: pass it as schedule.Config.Tracer.
func (t *Tracer) StartTick(ctx context.Context, schedule string, tick time.Time) (context.Context, func(status string, err error)) {
	ctx, span := t.tracer.Start(ctx, "schedule tick "+schedule, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrSchedule.String(schedule), AttrTick.String(tick.UTC().Format(time.RFC3339))))
	return ctx, func(status string, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(AttrClaimStatus.String(status))
		}
		span.End()
	}
}
