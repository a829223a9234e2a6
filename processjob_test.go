package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
)

// AmountError is a processor's own error type.
type AmountError struct{ Cents int }

func (e *AmountError) Error() string { return fmt.Sprintf("amount %d is not positive", e.Cents) }

// Run one job now through its processor, middleware included, without
// enqueueing it: for a test of the processor or a one-off tool. The
// processor's own error type is reachable with errors.As.
func ExampleManager_ProcessJob() {
	b, cleanup := openStore()
	defer cleanup()
	m, err := worker.NewManager(b, worker.ManagerConfig{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	m.Use(func(next worker.Processor) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, j *worker.Job) error {
			fmt.Println("middleware sees", j.Type)
			return next.Process(ctx, j)
		})
	})
	_ = m.HandleFunc("invoice.processing", func(ctx context.Context, j *worker.Job) error {
		var inv Invoice
		if err := json.Unmarshal(j.Data, &inv); err != nil {
			return worker.NoRetry(err)
		}
		if inv.AmountCents <= 0 {
			return &AmountError{Cents: inv.AmountCents}
		}
		fmt.Println("processed", inv.ID)
		return nil
	})

	ctx := context.Background()
	ok := &worker.Job{ID: "job-1", Type: "invoice.processing", Data: json.RawMessage(`{"invoiceId":"INV-1","amountCents":1200}`)}
	fmt.Println("error:", m.ProcessJob(ctx, ok))

	bad := &worker.Job{ID: "job-2", Type: "invoice.processing", Data: json.RawMessage(`{"invoiceId":"INV-2","amountCents":0}`)}
	err = m.ProcessJob(ctx, bad)
	var amountErr *AmountError
	var jobErr *worker.JobError
	fmt.Println("error:", err)
	fmt.Println("AmountError:", errors.As(err, &amountErr), amountErr.Cents, "JobError:", errors.As(err, &jobErr), jobErr.JobID)
	// Output:
	// middleware sees invoice.processing
	// processed INV-1
	// error: <nil>
	// middleware sees invoice.processing
	// error: worker: process job job-2 (invoice.processing): amount 0 is not positive
	// AmountError: true 0 JobError: true job-2
}

// TestProcessJob: ProcessJob runs the registered processor with its
// middleware, before and after Start, touches no broker record, and turns
// bad input, unknown types, panics and timeouts into errors.
func TestProcessJob(t *testing.T) {
	b := testbroker.SQLite(t)
	m, err := worker.NewManager(b, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	wrapped := 0
	m.Use(func(next worker.Processor) worker.Processor {
		return worker.ProcessorFunc(func(ctx context.Context, j *worker.Job) error {
			wrapped++
			return next.Process(ctx, j)
		})
	})
	_ = m.HandleFunc("ok", func(ctx context.Context, j *worker.Job) error {
		if err := worker.SetProgress(ctx, 50); err != nil {
			return err
		}
		return worker.SetResult(ctx, "done")
	})
	_ = m.HandleFunc("panics", func(context.Context, *worker.Job) error { panic("boom") })
	_ = m.HandleFunc("slow", func(ctx context.Context, _ *worker.Job) error { <-ctx.Done(); return ctx.Err() })
	ctx := context.Background()

	if err := m.ProcessJob(ctx, &worker.Job{ID: "a", Queue: "default", Type: "ok"}); err != nil {
		t.Fatalf("ProcessJob before Start: %v", err)
	}
	startManager(t, m)
	if err := m.ProcessJob(ctx, &worker.Job{ID: "a", Queue: "default", Type: "ok"}); err != nil {
		t.Fatalf("ProcessJob after Start: %v", err)
	}
	if wrapped != 2 {
		t.Fatalf("middleware ran %d times for 2 ProcessJob calls, want 2", wrapped)
	}
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "default", "a"); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("Get of a job only run by ProcessJob: %v, want ErrNotFound (nothing stored)", err)
	}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		job  *worker.Job
		want string
	}{
		{"nil context", nil, &worker.Job{Type: "ok"}, "context is nil"},
		{"nil job", ctx, nil, "job is nil"},
		{"empty type", ctx, &worker.Job{ID: "e"}, "job type is empty"},
		{"unknown type", ctx, &worker.Job{ID: "u", Type: "nope"}, `no processor registered for job type "nope"`},
		{"panic", ctx, &worker.Job{ID: "p", Type: "panics"}, "panic: boom"},
		{"timeout", ctx, &worker.Job{ID: "s", Type: "slow", Timeout: 20 * time.Millisecond}, "job timed out after 20ms"},
	} {
		err := m.ProcessJob(tc.ctx, tc.job)
		var jobErr *worker.JobError
		if !errors.As(err, &jobErr) || jobErr.Op != "process" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ProcessJob = %v, want a JobError of op process saying %q", tc.name, err, tc.want)
		}
	}
}
