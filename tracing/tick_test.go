package tracing_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/tracing"
)

// TestCronTickTrace: a cron tick is a span "schedule tick <name>" and the
// attempt of the job it enqueued is its child.
func TestCronTickTrace(t *testing.T) {
	b := testbroker.SQLite(t)
	var tr *tracing.Tracer
	bd := setup(t, b, func(m *worker.Manager, t2 *tracing.Tracer) {
		tr = t2
		_ = m.HandleFunc("report", func(context.Context, *worker.Job) error { return nil })
	})
	c, err := schedule.New(b, schedule.Config{PollInterval: 10 * time.Millisecond, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upsert(context.Background(), schedule.Entry{Name: "heartbeat", Spec: "@every 1s",
		Job: schedule.JobTemplate{Queue: "q", Type: "report"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testwait.For(t, 10*time.Second, "a tick's job to be processed", func() bool { return len(bd.byKind(trace.SpanKindConsumer)) > 0 })
	consumer := bd.byKind(trace.SpanKindConsumer)[0]
	if !consumer.Parent.IsValid() {
		t.Fatal("the tick job's attempt has no parent span: the tick's trace context was not carried")
	}
	// The tick's span ends once its claim has returned, and the claim's
	// commit already let the Manager run the job: on a loaded machine the
	// attempt's span may be exported first, so wait for its parent.
	var parent *tracetest.SpanStub
	testwait.For(t, 10*time.Second, "the attempt's parent span to end", func() bool {
		for _, s := range bd.spans.GetSpans() {
			if s.SpanContext.SpanID() == consumer.Parent.SpanID() {
				parent = &s
				return true
			}
		}
		return false
	})
	if parent.SpanKind != trace.SpanKindInternal || parent.Name != "schedule tick heartbeat" || attrs(*parent)[tracing.AttrClaimStatus].AsString() != "ok" {
		t.Errorf("the job's parent span is %q (kind %v, claim status %v), want schedule tick heartbeat (internal, ok)", parent.Name, parent.SpanKind, attrs(*parent)[tracing.AttrClaimStatus])
	}
}
