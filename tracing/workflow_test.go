package tracing_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/tracing"
	"github.com/aibos/worker/workflow"
)

// TestWorkflowOneTrace runs a workflow of three steps started in a parent
// span: every step's attempt is a span of the parent's trace, under it,
// and names its step.
func TestWorkflowOneTrace(t *testing.T) {
	b := testbroker.SQLite(t)
	var engine *workflow.Engine
	bd := setupQueues(t, b, []string{"q", workflow.DefaultQueue}, func(m *worker.Manager, tr *tracing.Tracer) {
		var err error
		engine, err = workflow.NewEngine(b, workflow.Config{Propagate: tr.Inject, RetentionInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		step := workflow.StepProcessorFunc(func(context.Context, *workflow.StepInfo, workflow.Data) (workflow.Data, error) {
			return workflow.Data{}, nil
		})
		if err := engine.RegisterStepProcessor("noop", step); err != nil {
			t.Fatal(err)
		}
		if err := engine.Register(workflow.Workflow{Name: "invoice", Steps: []workflow.Step{
			{Name: "validate", Processor: "noop"}, {Name: "totals", Processor: "noop"}, {Name: "post", Processor: "noop"}}}); err != nil {
			t.Fatal(err)
		}
		if err := engine.Attach(m); err != nil {
			t.Fatal(err)
		}
	})
	ctx, parent := bd.tp.Tracer("app").Start(context.Background(), "POST /invoices")
	run, err := engine.Execute(ctx, "invoice", map[string]any{"invoice": 7}, workflow.ExecuteOptions{})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the run to succeed", func() bool {
		r, err := engine.Get(context.Background(), run.ID)
		return err == nil && r.State == workflow.StateSucceeded
	})
	steps := map[string]bool{}
	for _, s := range bd.byKind(trace.SpanKindConsumer) {
		if s.SpanContext.TraceID() != parent.SpanContext().TraceID() || s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("step span %v is in trace %v under %v, want the run's trace %v under %v", attrs(s)["aibos_worker.workflow.step"].AsString(),
				s.SpanContext.TraceID(), s.Parent.SpanID(), parent.SpanContext().TraceID(), parent.SpanContext().SpanID())
		}
		steps[attrs(s)["aibos_worker.workflow.step"].AsString()] = true
	}
	if len(steps) != 3 || !steps["validate"] || !steps["totals"] || !steps["post"] {
		t.Errorf("spans of steps %v, want validate, totals and post", steps)
	}
}
