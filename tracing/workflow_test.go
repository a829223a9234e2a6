package tracing_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/tracing"
	"github.com/aibos/worker/workflow"
)

// TestWorkflowOneTrace runs a workflow of three steps, started in a parent
// span and started with none: either way the run is one trace, with the
// run's span (under the parent, if any) and every step's attempt under it.
func TestWorkflowOneTrace(t *testing.T) {
	for _, withParent := range []bool{true, false} {
		name := "no parent span"
		if withParent {
			name = "in a parent span"
		}
		t.Run(name, func(t *testing.T) { testWorkflowOneTrace(t, withParent) })
	}
}

func testWorkflowOneTrace(t *testing.T, withParent bool) {
	b := testbroker.SQLite(t)
	var engine *workflow.Engine
	bd := setupQueues(t, b, []string{"q", workflow.DefaultQueue}, func(m *worker.Manager, tr *tracing.Tracer) {
		var err error
		engine, err = workflow.NewEngine(b, workflow.Config{Tracer: tr, RetentionInterval: -1})
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
			{Name: "validate", Processor: "noop"}, {Name: "totals", Processor: "noop", DependsOn: []string{"validate"}},
			{Name: "post", Processor: "noop", DependsOn: []string{"totals"}}}}); err != nil {
			t.Fatal(err)
		}
		if err := engine.Attach(m); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	var parent trace.Span
	if withParent {
		ctx, parent = bd.tp.Tracer("app").Start(ctx, "POST /invoices")
	}
	run, err := engine.Execute(ctx, "invoice", map[string]any{"invoice": 7}, workflow.ExecuteOptions{TenantID: "t1"})
	if parent != nil {
		parent.End()
	}
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the run to succeed", func() bool {
		r, err := engine.Get(context.Background(), run.ID)
		return err == nil && r.State == workflow.StateSucceeded
	})

	var runSpans []string
	var rs trace.SpanContext
	for _, s := range bd.byKind(trace.SpanKindProducer) {
		runSpans = append(runSpans, s.Name)
		rs = s.SpanContext
		if withParent && (s.Parent.SpanID() != parent.SpanContext().SpanID() || rs.TraceID() != parent.SpanContext().TraceID()) {
			t.Errorf("the run's span is under %v in trace %v, want the caller's span %v", s.Parent.SpanID(), rs.TraceID(), parent.SpanContext().SpanID())
		}
		if !withParent && s.Parent.IsValid() {
			t.Errorf("the run's span has parent %v, want none (a root)", s.Parent.SpanID())
		}
		wantAttrs(t, s, map[attribute.Key]any{tracing.AttrWorkflow: "invoice", tracing.AttrRunID: run.ID, tracing.AttrTenant: "t1",
			tracing.AttrRunCreated: true, "messaging.destination.name": workflow.DefaultQueue})
	}
	if len(runSpans) != 1 || runSpans[0] != "workflow invoice" {
		t.Fatalf("producer spans %q, want one: %q", runSpans, "workflow invoice")
	}
	steps := map[string]bool{}
	for _, s := range bd.byKind(trace.SpanKindConsumer) {
		step := attrs(s)["aibos_worker.workflow.step"].AsString()
		if s.SpanContext.TraceID() != rs.TraceID() || s.Parent.SpanID() != rs.SpanID() {
			t.Errorf("step %q's span is in trace %v under %v, want the run's trace %v under its span %v", step,
				s.SpanContext.TraceID(), s.Parent.SpanID(), rs.TraceID(), rs.SpanID())
		}
		if kind, ok := linkTo(s, rs); !ok || kind != "producer" {
			t.Errorf("step %q's span does not link to the run's span (links %v)", step, s.Links)
		}
		steps[step] = true
	}
	if len(steps) != 3 || !steps["validate"] || !steps["totals"] || !steps["post"] {
		t.Errorf("spans of steps %v, want validate, totals and post", steps)
	}
}
