package tracing_test

import (
	"context"
	"testing"
	"time"

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
	for _, s := range bd.byKind(trace.SpanKindInternal) {
		if s.SpanContext.SpanID() == consumer.Parent.SpanID() {
			if s.Name != "schedule tick heartbeat" || attrs(s)[tracing.AttrClaimStatus].AsString() != "ok" {
				t.Errorf("the job's parent span is %q (claim status %v), want schedule tick heartbeat (ok)", s.Name, attrs(s)[tracing.AttrClaimStatus])
			}
			return
		}
	}
	t.Errorf("the tick job's attempt has parent %v, which is no tick span", consumer.Parent.SpanID())
}
