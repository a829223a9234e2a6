package tracing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/tracing"
)

// TestEncryptedJobErrorNotInSpan fails an attempt of a job the Tracer's
// Encryption encrypts, with an error quoting its data: the consumer span
// records the error's kind, not its message, in both its status and its
// exception event. A job of a plain queue keeps its message.
func TestEncryptedJobErrorNotInSpan(t *testing.T) {
	const marker = "MARKER-IBAN-DE89370400440532013000"
	key, err := envelope.NewKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := envelope.NewRing(key)
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := tracing.New(tracing.Config{TracerProvider: tp, Encryption: &worker.Encryption{Keys: ring, Queues: []string{"invoices"}}})
	if err != nil {
		t.Fatal(err)
	}
	failing := tr.Middleware()(worker.ProcessorFunc(func(context.Context, *worker.Job) error {
		return fmt.Errorf("ledger refused account %s", marker)
	}))
	for _, c := range []struct {
		queue  string
		leaked bool
	}{{"invoices", false}, {"plain", true}} {
		spans.Reset()
		job := &worker.Job{ID: "j-" + c.queue, Queue: c.queue, Type: "invoice.process", Attempt: 1}
		if err := failing.Process(context.Background(), job); err == nil || !strings.Contains(err.Error(), marker) {
			t.Fatalf("%s: the processor's error reaches the Manager as %v; want it whole", c.queue, err)
		}
		got := spans.GetSpans()
		if len(got) != 1 {
			t.Fatalf("%s: %d spans, want 1", c.queue, len(got))
		}
		var text []string
		text = append(text, got[0].Status.Description)
		for _, e := range got[0].Events {
			for _, kv := range e.Attributes {
				text = append(text, kv.Value.String())
			}
		}
		all := strings.Join(text, " | ")
		if leaked := strings.Contains(all, marker); leaked != c.leaked {
			t.Errorf("%s: span status and events %q: marker present %v, want %v", c.queue, all, leaked, c.leaked)
		}
		if !c.leaked && !strings.Contains(got[0].Status.Description, "message withheld") {
			t.Errorf("%s: span status %q; want it to say the message is withheld", c.queue, got[0].Status.Description)
		}
	}
}
