package tracing_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/tracing"
)

// BenchmarkJobSpans measures what tracing adds per job with every span
// sampled and exported to a no-op exporter through the SDK's batcher: the
// producer span of an add (with the headers it injects) and the consumer
// span of one attempt (with the headers it extracts). The broker's work
// is left out: it is the same with tracing on or off.
func BenchmarkJobSpans(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tr, err := tracing.New(tracing.Config{TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	job := &worker.Job{ID: "0192f2a4-7f6e-7c3a-9b1e-3f5d2c4b6a8e", Queue: "invoices", Type: "invoice.processing", Attempt: 1, MaxAttempts: 3}
	add := tr.AddMiddleware()(func(_ context.Context, _ string, specs []worker.JobSpec) ([]*worker.Job, error) {
		job.Headers = specs[0].Headers
		return []*worker.Job{job}, nil
	})
	process := tr.Middleware()(worker.ProcessorFunc(func(context.Context, *worker.Job) error { return nil }))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := add(ctx, "invoices", []worker.JobSpec{{Type: "invoice.processing"}}); err != nil {
			b.Fatal(err)
		}
		if err := process.Process(ctx, job); err != nil {
			b.Fatal(err)
		}
	}
}
