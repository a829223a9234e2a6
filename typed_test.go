package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
)

type noKind struct{}

func (noKind) Kind() string { return "" }

type ptrKind struct{ name string }

func (p *ptrKind) Kind() string { return p.name }

// TestTypedProcessorDecodeErrorIsNoRetry: a job whose data is not the
// registered struct is dead at its first attempt, with an error naming the
// struct, while a well-formed one is processed with its decoded args.
func TestTypedProcessorDecodeErrorIsNoRetry(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		c := newClient(t, b)
		m := newManager(t, b, fastConfig())
		got := make(chan SendReminder, 1)
		if err := worker.Register(m, func(ctx context.Context, j *worker.JobOf[SendReminder]) error {
			got <- j.Args
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		bad := add(t, c, "default", worker.JobSpec{Type: "invoice.reminder", Data: json.RawMessage(`{"days":"fourteen"}`), MaxAttempts: 5})
		good, err := worker.Add(context.Background(), c, "default", SendReminder{InvoiceID: "inv_1", Days: 3}, worker.JobSpec{})
		if err != nil {
			t.Fatal(err)
		}
		startManager(t, m)
		dead := waitState(t, c, "default", bad.ID, worker.StateDead)
		if dead.Attempt != 1 || !strings.Contains(dead.LastError, "payload is not a worker_test.SendReminder") {
			t.Fatalf("undecodable job: dead at attempt %d with %q; want attempt 1 and an error naming the struct", dead.Attempt, dead.LastError)
		}
		waitState(t, c, "default", good.ID, worker.StateCompleted)
		if a := <-got; a != (SendReminder{InvoiceID: "inv_1", Days: 3}) {
			t.Fatalf("processor got args %+v", a)
		}
	})
}

// TestTypedRegisterAndAddRejectBadInput: bad kinds and specs are errors
// that say what is wrong, never panics.
func TestTypedRegisterAndAddRejectBadInput(t *testing.T) {
	b := testbroker.SQLite(t)
	m := newManager(t, b, fastConfig())
	c := newClient(t, b)
	ctx := context.Background()
	ok := func(context.Context, *worker.JobOf[SendReminder]) error { return nil }
	for _, tc := range []struct {
		what string
		err  error
		want string
	}{
		{"empty kind", worker.Register(m, func(context.Context, *worker.JobOf[noKind]) error { return nil }), "empty job type"},
		{"kind on a nil pointer", worker.Register(m, func(context.Context, *worker.JobOf[*ptrKind]) error { return nil }), "Kind panicked"},
		{"nil function", worker.Register[SendReminder](m, nil), "is nil"},
		{"first registration", worker.Register(m, ok), ""},
		{"second registration", worker.Register(m, ok), "already has a processor"},
	} {
		if tc.want == "" {
			if tc.err != nil {
				t.Errorf("%s: %v", tc.what, tc.err)
			}
			continue
		}
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("Register with %s: %v; want an error saying %q", tc.what, tc.err, tc.want)
		}
	}
	for _, tc := range []struct {
		what string
		spec worker.JobSpec
		want string
	}{
		{"another type", worker.JobSpec{Type: "invoice.other"}, `spec type "invoice.other" differs from the args' kind "invoice.reminder"`},
		{"data set", worker.JobSpec{Data: 1}, "spec data is set"},
	} {
		_, err := worker.Add(ctx, c, "default", SendReminder{}, tc.spec)
		if !errors.Is(err, worker.ErrInvalidJob) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add with %s: %v; want ErrInvalidJob saying %q", tc.what, err, tc.want)
		}
	}
	if _, err := worker.Add(ctx, c, "default", noKind{}, worker.JobSpec{}); !errors.Is(err, worker.ErrInvalidJob) && (err == nil || !strings.Contains(err.Error(), "empty job type")) {
		t.Errorf("Add of args with an empty kind: %v", err)
	}
}
