package tracing_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/httpproc"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/retry"
	"github.com/aibos/worker/tracing"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// bundle is a traced Client and Manager on one broker, with the spans
// they ended.
type bundle struct {
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	client *worker.Client
	m      *worker.Manager

	mu     sync.Mutex
	events []worker.Event
}

func setup(t *testing.T, b broker.Broker, register func(m *worker.Manager, tr *tracing.Tracer)) *bundle {
	t.Helper()
	return setupQueues(t, b, []string{"q"}, register)
}

// setupQueues is setup with a Manager serving queues.
func setupQueues(t *testing.T, b broker.Broker, queues []string, register func(m *worker.Manager, tr *tracing.Tracer)) *bundle {
	t.Helper()
	bd := newBundle(t, b, queues, register)
	bd.start(t)
	return bd
}

// newBundle is setupQueues with the Manager not started yet: a process of
// its own, with its own tracer provider and Tracer.
func newBundle(t *testing.T, b broker.Broker, queues []string, register func(m *worker.Manager, tr *tracing.Tracer)) *bundle {
	t.Helper()
	bd := &bundle{spans: tracetest.NewInMemoryExporter()}
	bd.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(bd.spans))
	t.Cleanup(func() { _ = bd.tp.Shutdown(context.Background()) })
	tr, err := tracing.New(tracing.Config{TracerProvider: bd.tp})
	if err != nil {
		t.Fatal(err)
	}
	if bd.client, err = worker.NewClient(b, worker.ClientConfig{AddMiddleware: []worker.AddMiddleware{tr.AddMiddleware()}}); err != nil {
		t.Fatal(err)
	}
	bd.m, err = worker.NewManager(b, worker.ManagerConfig{
		Queues: queueConfigs(queues), Concurrency: 2, PollInterval: 10 * time.Millisecond,
		Retry:  retry.Policy{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e worker.Event) {
			bd.mu.Lock()
			defer bd.mu.Unlock()
			bd.events = append(bd.events, e)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	bd.m.Use(tr.Middleware())
	register(bd.m, tr)
	return bd
}

// start starts the Manager, shut down when the test ends.
func (bd *bundle) start(t *testing.T) {
	t.Helper()
	if err := bd.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bd.m.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

func queueConfigs(names []string) []worker.QueueConfig {
	qs := make([]worker.QueueConfig, len(names))
	for i, n := range names {
		qs[i] = worker.QueueConfig{Name: n}
	}
	return qs
}

// waitCompleted waits for the job's completion event.
func (bd *bundle) waitCompleted(t *testing.T, id string) { bd.waitEvent(t, id, worker.EventCompleted) }

// waitEvent waits for an event of kind about the job.
func (bd *bundle) waitEvent(t *testing.T, id string, kind worker.EventKind) {
	t.Helper()
	testwait.For(t, 10*time.Second, "job "+id+" to be "+string(kind), func() bool {
		bd.mu.Lock()
		defer bd.mu.Unlock()
		for _, e := range bd.events {
			if e.Job.ID == id && e.Kind == kind {
				return true
			}
		}
		return false
	})
}

func (bd *bundle) byKind(kind trace.SpanKind) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range bd.spans.GetSpans() {
		if s.SpanKind == kind {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[attribute.Key]any) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[k]; !ok || g.AsInterface() != v {
			t.Errorf("span %q: attribute %s = %v, want %v", s.Name, k, g.AsInterface(), v)
		}
	}
}

// linkTo returns the link of s to sc, if any, with its kind.
func linkTo(s tracetest.SpanStub, sc trace.SpanContext) (string, bool) {
	for _, l := range s.Links {
		if l.SpanContext.SpanID() == sc.SpanID() && l.SpanContext.TraceID() == sc.TraceID() {
			for _, kv := range l.Attributes {
				if kv.Key == tracing.LinkKind {
					return kv.Value.AsString(), true
				}
			}
			return "", true
		}
	}
	return "", false
}

// TestJobRetryTrace enqueues in a parent span a job whose first attempt
// fails: one producer span under the parent, two consumer spans under
// the producer, each linked to it, the second also to the first.
func TestJobRetryTrace(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		bd := setup(t, b, func(m *worker.Manager, _ *tracing.Tracer) {
			_ = m.HandleFunc("invoice.processing", func(_ context.Context, job *worker.Job) error {
				if job.Attempt == 1 {
					return errors.New("ledger is busy")
				}
				return nil
			})
		})
		ctx, parent := bd.tp.Tracer("app").Start(context.Background(), "POST /invoices")
		job, err := bd.client.Add(ctx, "q", worker.JobSpec{Type: "invoice.processing", MaxAttempts: 3})
		parent.End()
		if err != nil {
			t.Fatal(err)
		}
		bd.waitCompleted(t, job.ID)

		producers := bd.byKind(trace.SpanKindProducer)
		if len(producers) != 1 {
			t.Fatalf("%d producer spans, want 1", len(producers))
		}
		p := producers[0]
		if p.Parent.SpanID() != parent.SpanContext().SpanID() || p.SpanContext.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("producer span's parent is %v, want the enqueuer's span %v", p.Parent.SpanID(), parent.SpanContext().SpanID())
		}
		if p.Name != "send q" {
			t.Errorf("producer span is named %q, want %q", p.Name, "send q")
		}
		wantAttrs(t, p, map[attribute.Key]any{"messaging.system": "aibos_worker", "messaging.operation.type": "send",
			"messaging.operation.name": "add", "messaging.destination.name": "q", "messaging.message.id": job.ID,
			tracing.AttrJobType: "invoice.processing"})

		stored, err := bd.client.Get(context.Background(), "q", job.ID)
		if err != nil {
			t.Fatal(err)
		}
		carried := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(stored.Headers)))
		if carried.SpanID() != p.SpanContext.SpanID() {
			t.Errorf("the job's traceparent header %q does not name the producer span %v", stored.Headers["traceparent"], p.SpanContext.SpanID())
		}

		consumers := bd.byKind(trace.SpanKindConsumer)
		if len(consumers) != 2 {
			t.Fatalf("%d consumer spans, want 2 (one per attempt)", len(consumers))
		}
		for i, c := range consumers {
			if c.Parent.SpanID() != p.SpanContext.SpanID() || c.SpanContext.TraceID() != p.SpanContext.TraceID() {
				t.Errorf("attempt %d: parent %v, want the producer span %v in its trace", i+1, c.Parent.SpanID(), p.SpanContext.SpanID())
			}
			if kind, ok := linkTo(c, p.SpanContext); !ok || kind != "producer" {
				t.Errorf("attempt %d: no producer link to the producer span (links %v)", i+1, c.Links)
			}
			wantAttrs(t, c, map[attribute.Key]any{"messaging.system": "aibos_worker", "messaging.operation.type": "process",
				"messaging.operation.name": "process", "messaging.destination.name": "q", "messaging.message.id": job.ID,
				tracing.AttrJobType: "invoice.processing", tracing.AttrJobAttempt: int64(i + 1)})
		}
		if consumers[0].Status.Code != codes.Error || consumers[1].Status.Code == codes.Error {
			t.Errorf("statuses %v, %v: want the failed attempt Error and the second not", consumers[0].Status, consumers[1].Status)
		}
		if kind, ok := linkTo(consumers[1], consumers[0].SpanContext); !ok || kind != "previous_attempt" {
			t.Errorf("the retry does not link to the first attempt (links %v)", consumers[1].Links)
		}
		if _, ok := linkTo(consumers[0], consumers[1].SpanContext); ok || len(consumers[0].Links) != 1 {
			t.Errorf("the first attempt has links %v, want only the producer", consumers[0].Links)
		}
	})
}

// TestRetryLinksAcrossManagers fails a job's first attempt on one
// Manager and runs its retry on another, with tracer state of its own, as
// on another machine: the retry's span links to the first attempt's.
func TestRetryLinksAcrossManagers(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		handle := func(fail bool) func(m *worker.Manager, _ *tracing.Tracer) {
			return func(m *worker.Manager, _ *tracing.Tracer) {
				_ = m.HandleFunc("invoice.processing", func(ctx context.Context, job *worker.Job) error {
					if !fail {
						return nil
					}
					// Keep the retry from A: nothing is fetched from a
					// paused queue, and A stops before it is resumed.
					if err := b.QueuePause(ctx, "q"); err != nil {
						return err
					}
					return errors.New("ledger is busy")
				})
			}
		}
		a := newBundle(t, b, []string{"q"}, handle(true))
		bm := newBundle(t, b, []string{"q"}, handle(false))
		a.start(t)
		job, err := a.client.Add(context.Background(), "q", worker.JobSpec{Type: "invoice.processing", MaxAttempts: 3})
		if err != nil {
			t.Fatal(err)
		}
		a.waitEvent(t, job.ID, worker.EventRetrying)
		if err := a.m.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := b.QueueResume(context.Background(), "q"); err != nil {
			t.Fatal(err)
		}
		bm.start(t)
		bm.waitCompleted(t, job.ID)

		first, second := a.byKind(trace.SpanKindConsumer), bm.byKind(trace.SpanKindConsumer)
		if len(first) != 1 || len(second) != 1 {
			t.Fatalf("%d consumer spans on A and %d on B, want 1 each", len(first), len(second))
		}
		if got := attrs(second[0])[tracing.AttrJobAttempt].AsInt64(); got != 2 {
			t.Fatalf("B ran attempt %d, want 2", got)
		}
		if kind, ok := linkTo(second[0], first[0].SpanContext); !ok || kind != "previous_attempt" {
			t.Errorf("B's attempt does not link to A's (links %v, A's span %v)", second[0].Links, first[0].SpanContext.SpanID())
		}
		if p := a.byKind(trace.SpanKindProducer); len(p) != 1 || second[0].Parent.SpanID() != p[0].SpanContext.SpanID() {
			t.Errorf("B's attempt is under %v, want the producer span", second[0].Parent.SpanID())
		}
	})
}

// TestEndpointReceivesTraceparent processes a job through httpproc: the
// application's endpoint receives a traceparent in the job's trace whose
// span is the call's client span, a child of the attempt's span.
func TestEndpointReceivesTraceparent(t *testing.T) {
	got := make(chan http.Header, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Clone():
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()
	bd := setup(t, testbroker.SQLite(t), func(m *worker.Manager, tr *tracing.Tracer) {
		p, err := httpproc.New(httpproc.EndpointConfig{URL: app.URL + "/jobs?token=secret", Secret: "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
			Client: &http.Client{Transport: tr.Transport(nil)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Register("invoice.sync", p); err != nil {
			t.Fatal(err)
		}
	})
	ctx, parent := bd.tp.Tracer("app").Start(context.Background(), "POST /invoices")
	job, err := bd.client.Add(ctx, "q", worker.JobSpec{Type: "invoice.sync"})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	bd.waitCompleted(t, job.ID)
	var h http.Header
	select {
	case h = <-got:
	default:
		t.Fatal("the endpoint was not called")
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
	if !sc.IsValid() || sc.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("the endpoint received traceparent %q, want one in the enqueuer's trace %v", h.Get("traceparent"), parent.SpanContext().TraceID())
	}
	clients := bd.byKind(trace.SpanKindClient)
	consumers := bd.byKind(trace.SpanKindConsumer)
	if len(clients) != 1 || len(consumers) != 1 {
		t.Fatalf("%d client and %d consumer spans, want 1 each", len(clients), len(consumers))
	}
	c := clients[0]
	if c.SpanContext.SpanID() != sc.SpanID() || c.Parent.SpanID() != consumers[0].SpanContext.SpanID() {
		t.Errorf("the traceparent names span %v, want the client span %v under the attempt's span", sc.SpanID(), c.SpanContext.SpanID())
	}
	wantAttrs(t, c, map[attribute.Key]any{"http.request.method": "POST", "url.full": app.URL + "/jobs", "http.response.status_code": int64(200)})
}

// TestNewRejectsBadConfig: a missing provider is named.
func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := tracing.New(tracing.Config{}); err == nil {
		t.Error("New without a tracer provider succeeded")
	}
}
