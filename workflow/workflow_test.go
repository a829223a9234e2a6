package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/workflow"
)

// add returns a step processor that copies its data and sets key to value.
func add(key string, value any) workflow.StepProcessorFunc {
	return func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
		d[key] = value
		return d, nil
	}
}

func invoiceWorkflow() workflow.Workflow {
	return workflow.Workflow{
		Name: "invoice.processing",
		Steps: []workflow.Step{
			{Name: "validate-invoice", Processor: "InvoiceValidator", RetryAttempts: 3, RetryDelay: 10 * time.Millisecond},
			{Name: "calculate-totals", Processor: "InvoiceCalculator", RetryAttempts: 2, RetryDelay: 5 * time.Millisecond},
			{Name: "post-to-ledger", Processor: "LedgerPoster", RetryAttempts: 5, RetryDelay: 20 * time.Millisecond},
			{Name: "send-notifications", Processor: "NotificationSender", RetryAttempts: 3, RetryDelay: 10 * time.Millisecond},
		},
	}
}

// TestInvoiceWorkflow runs the seed's four-step invoice workflow end to end:
// the steps run in order, each sees what the previous ones added, and
// OnSuccess runs once with the finished run.
func TestInvoiceWorkflow(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		var order []string
		var mu sync.Mutex
		var success atomic.Int32
		record := func(name string, key string, value any) workflow.StepProcessorFunc {
			return func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				mu.Lock()
				order = append(order, s.Step.Name)
				mu.Unlock()
				d[key] = value
				return d, nil
			}
		}
		w := invoiceWorkflow()
		w.OnSuccess = func(ctx context.Context, run *workflow.Run) error {
			success.Add(1)
			return nil
		}
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"InvoiceValidator":  record("v", "validation", map[string]any{"valid": true}),
			"InvoiceCalculator": record("c", "totals", map[string]any{"total": 120}),
			"LedgerPoster": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				if d["validation"] == nil || d["totals"] == nil {
					return nil, fmt.Errorf("ledger poster got %v, want validation and totals", d)
				}
				return record("l", "ledgerEntry", "je_1")(ctx, s, d)
			},
			"NotificationSender": record("n", "notified", true),
		}, w)
		start(t, b, e, 4)
		run, err := e.Execute(context.Background(), "invoice.processing",
			map[string]any{"invoiceId": "inv_1", "tenantId": "tenant_123"}, workflow.ExecuteOptions{TenantID: "tenant_123"})
		if err != nil {
			t.Fatal(err)
		}
		if run.State != workflow.StateRunning || run.TenantID != "tenant_123" || len(run.Steps) != 4 {
			t.Fatalf("new run: %+v", run)
		}
		run = waitRun(t, e, run.ID, workflow.StateSucceeded)
		waitJob(t, b, e.Queue(), run.OnSuccess.ID, broker.StateCompleted)
		want := []string{"validate-invoice", "calculate-totals", "post-to-ledger", "send-notifications"}
		mu.Lock()
		got := slices.Clone(order)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("steps ran in order %v, want %v", got, want)
		}
		for i, s := range run.Steps {
			if s.State != workflow.StepCompleted || s.Attempts != 1 || s.CompletedSeq != i+1 || s.StartedAt.IsZero() || s.FinishedAt.Before(s.StartedAt) {
				t.Errorf("step %s: state %s attempts %d seq %d started %v finished %v", s.Name, s.State, s.Attempts, s.CompletedSeq, s.StartedAt, s.FinishedAt)
			}
		}
		var out map[string]any
		if err := json.Unmarshal(run.Steps[3].Output, &out); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"invoiceId", "validation", "totals", "ledgerEntry", "notified"} {
			if out[k] == nil {
				t.Errorf("final output %v lacks %q", out, k)
			}
		}
		if n := success.Load(); n != 1 {
			t.Fatalf("OnSuccess ran %d times, want 1", n)
		}
		list, err := e.List(context.Background(), workflow.ListParams{Workflow: "invoice.processing", State: workflow.StateSucceeded})
		if err != nil || len(list.Runs) != 1 || list.Runs[0].ID != run.ID {
			t.Fatalf("List(succeeded) = %+v, %v; want the run", list, err)
		}
		list, err = e.List(context.Background(), workflow.ListParams{Workflow: "invoice.processing", State: workflow.StateRunning})
		if err != nil || len(list.Runs) != 0 {
			t.Fatalf("List(running) = %+v, %v; want none", list, err)
		}
	})
}

// TestStepRetriesThenSucceeds: a step failing twice succeeds on its third
// attempt, and the run records the three attempts.
func TestStepRetriesThenSucceeds(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		var calls atomic.Int32
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"first": add("a", 1),
			"flaky": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				if n := calls.Add(1); n <= 2 {
					return nil, fmt.Errorf("ledger unavailable (call %d)", n)
				}
				d["b"] = 2
				return d, nil
			},
		}, workflow.Workflow{Name: "retry", Steps: []workflow.Step{
			{Name: "first", Processor: "first"},
			{Name: "flaky", Processor: "flaky", RetryAttempts: 3, RetryDelay: 20 * time.Millisecond},
		}})
		start(t, b, e, 2)
		run, err := e.Execute(context.Background(), "retry", nil, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, e, run.ID, workflow.StateSucceeded)
		s := run.Step("flaky")
		if s.Attempts != 3 || s.State != workflow.StepCompleted || calls.Load() != 3 {
			t.Fatalf("flaky step: attempts %d state %s calls %d; want 3 attempts, completed, 3 calls", s.Attempts, s.State, calls.Load())
		}
		if s.Error != "" {
			t.Errorf("completed step keeps error %q", s.Error)
		}
		if a := run.Step("first").Attempts; a != 1 {
			t.Errorf("first step attempts %d, want 1", a)
		}
	})
}

// TestRetriesExhaustedCompensates: a step that uses up its attempts fails
// the run; the completed steps' compensations run in reverse completion
// order, then OnError runs once.
func TestRetriesExhaustedCompensates(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		var mu sync.Mutex
		var events []string
		note := func(s string) {
			mu.Lock()
			events = append(events, s)
			mu.Unlock()
		}
		var failures atomic.Int32
		undo := func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
			if !s.Compensating {
				return nil, errors.New("compensation called without Compensating")
			}
			note("undo " + s.Step.Name)
			return nil, nil
		}
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"reserve": add("reserved", true),
			"charge":  add("charged", true),
			"undo":    undo,
			"ship": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				failures.Add(1)
				return nil, errors.New("carrier rejected the parcel")
			},
		}, workflow.Workflow{
			Name: "order",
			Steps: []workflow.Step{
				{Name: "reserve", Processor: "reserve", Compensation: "undo"},
				{Name: "charge", Processor: "charge", Compensation: "undo"},
				{Name: "ship", Processor: "ship", RetryAttempts: 2, RetryDelay: 10 * time.Millisecond, Compensation: "undo"},
				{Name: "notify", Processor: "reserve"},
			},
			OnError: func(ctx context.Context, run *workflow.Run) error {
				note("on-error " + run.FailedStep + ": " + run.Error)
				return nil
			},
			OnSuccess: func(ctx context.Context, run *workflow.Run) error {
				note("on-success")
				return nil
			},
		})
		start(t, b, e, 4)
		run, err := e.Execute(context.Background(), "order", nil, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, e, run.ID, workflow.StateFailed)
		waitJob(t, b, e.Queue(), run.OnFailure.ID, broker.StateCompleted)
		// The hook job is completed: give a duplicate run of it no chance to
		// hide by checking the job's attempts as well.
		hook, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: e.Queue(), ID: run.OnFailure.ID})
		if err != nil || hook.Attempt != 1 {
			t.Fatalf("OnError job: %+v, %v; want one attempt", hook, err)
		}
		mu.Lock()
		got := slices.Clone(events)
		mu.Unlock()
		want := []string{"undo charge", "undo reserve", "on-error ship: carrier rejected the parcel"}
		if !slices.Equal(got, want) {
			t.Fatalf("events %q, want %q", got, want)
		}
		if failures.Load() != 2 {
			t.Errorf("failing step ran %d times, want its 2 attempts", failures.Load())
		}
		run, err = e.Get(context.Background(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		ship, notify := run.Step("ship"), run.Step("notify")
		if run.FailedStep != "ship" || ship.State != workflow.StepFailed || ship.Attempts != 2 || !strings.Contains(ship.Error, "carrier") {
			t.Errorf("run failed at %q; ship step %s attempts %d error %q", run.FailedStep, ship.State, ship.Attempts, ship.Error)
		}
		if notify.State != workflow.StepCancelled {
			t.Errorf("step after the failure is %s, want cancelled", notify.State)
		}
		for _, n := range []string{"reserve", "charge"} {
			if c := run.Step(n).CompensationState; c != broker.CompensationCompleted {
				t.Errorf("compensation of %s: %q, want completed", n, c)
			}
		}
		if c := ship.CompensationState; c != "" {
			t.Errorf("the failed step was compensated (%q); only completed steps are", c)
		}
	})
}

// TestDiamond: A → B, C → D. B and C run at the same time (each waits for
// the other to arrive), and D sees both outputs.
func TestDiamond(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		bArrived, cArrived := make(chan struct{}), make(chan struct{})
		barrier := func(mine, other chan struct{}, key string) workflow.StepProcessorFunc {
			var once sync.Once
			return func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				once.Do(func() { close(mine) })
				select {
				case <-other:
				case <-time.After(10 * time.Second):
					return nil, errors.New("the other branch never ran alongside this one")
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				d[key] = s.Step.Name
				d["last"] = s.Step.Name
				return d, nil
			}
		}
		var dSaw workflow.Data
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"A": add("a", "A"),
			"B": barrier(bArrived, cArrived, "b"),
			"C": barrier(cArrived, bArrived, "c"),
			"D": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				dSaw = d
				return d, nil
			},
		}, workflow.Workflow{Name: "diamond", Steps: []workflow.Step{
			{Name: "A", Processor: "A"},
			{Name: "B", Processor: "B", DependsOn: []string{"A"}, RetryAttempts: 1},
			{Name: "C", Processor: "C", DependsOn: []string{"A"}, RetryAttempts: 1},
			{Name: "D", Processor: "D", DependsOn: []string{"B", "C"}},
		}})
		start(t, b, e, 4)
		run, err := e.Execute(context.Background(), "diamond", map[string]any{"in": 1}, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		run = waitRun(t, e, run.ID, workflow.StateSucceeded)
		if dSaw["a"] != "A" || dSaw["b"] != "B" || dSaw["c"] != "C" || dSaw["in"] == nil {
			t.Fatalf("D received %v; want the input and the outputs of A, B and C", dSaw)
		}
		// Conflict rule: C is declared after B, so its "last" wins.
		if dSaw["last"] != "C" {
			t.Fatalf("D received last=%v; the later declared dependency (C) must win", dSaw["last"])
		}
		if d := run.Step("D"); d.Attempts != 1 || d.CompletedSeq != 4 {
			t.Fatalf("D: attempts %d seq %d; want it enqueued once, after B and C", d.Attempts, d.CompletedSeq)
		}
	})
}

// TestCancelMidRun: cancelling a run stops its running step (its context
// is cancelled) and the steps after it never run.
func TestCancelMidRun(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		started, stopped := make(chan struct{}), make(chan error, 1)
		var later atomic.Int32
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"first": add("x", 1),
			"slow": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				close(started)
				select {
				case <-ctx.Done():
					stopped <- context.Cause(ctx)
					return nil, ctx.Err()
				case <-time.After(20 * time.Second):
					stopped <- nil
					return d, nil
				}
			},
			"later": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				later.Add(1)
				return d, nil
			},
		}, workflow.Workflow{Name: "cancel", Steps: []workflow.Step{
			{Name: "first", Processor: "first"},
			{Name: "slow", Processor: "slow", RetryAttempts: 1},
			{Name: "later", Processor: "later"},
		}})
		start(t, b, e, 2)
		run, err := e.Execute(context.Background(), "cancel", nil, workflow.ExecuteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("the slow step never started")
		}
		run, err = e.Cancel(context.Background(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if run.State != workflow.StateCancelled || run.Step("slow").State != workflow.StepCancelled ||
			run.Step("later").State != workflow.StepCancelled || run.Step("first").State != workflow.StepCompleted {
			t.Fatalf("after cancel: run %s, steps first %s slow %s later %s", run.State,
				run.Step("first").State, run.Step("slow").State, run.Step("later").State)
		}
		select {
		case cause := <-stopped:
			if !errors.Is(cause, broker.ErrLeaseLost) {
				t.Fatalf("running step stopped with cause %v, want lease lost", cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the running step's context was not cancelled")
		}
		if _, err := e.Cancel(context.Background(), run.ID); !errors.Is(err, broker.ErrWrongState) {
			t.Fatalf("second cancel: %v, want ErrWrongState", err)
		}
		job, err := b.JobGet(context.Background(), &broker.JobGetParams{Queue: e.Queue(), ID: run.Step("slow").Job.ID})
		if err != nil || job.State != broker.StateCancelled {
			t.Fatalf("slow step's job: %+v, %v; want cancelled", job, err)
		}
		if later.Load() != 0 {
			t.Fatal("a step after the cancelled one ran")
		}
		if got, _ := e.Get(context.Background(), run.ID); got.State != workflow.StateCancelled {
			t.Fatalf("run is %s after its step stopped, want cancelled", got.State)
		}
	})
}

// TestIdempotencyKey: Execute twice with one key starts one run, also when
// the calls race; another key or tenant starts another.
func TestIdempotencyKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{"p": add("x", 1)},
			workflow.Workflow{Name: "idem", Steps: []workflow.Step{{Name: "s", Processor: "p"}}})
		ctx := context.Background()
		opts := workflow.ExecuteOptions{TenantID: "t1", IdempotencyKey: "invoice-42"}
		ids := make([]string, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run, err := e.Execute(ctx, "idem", map[string]any{"n": i}, opts)
				if err != nil {
					t.Errorf("execute %d: %v", i, err)
					return
				}
				ids[i] = run.ID
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("the same idempotency key started runs %v", ids)
			}
		}
		other, err := e.Execute(ctx, "idem", nil, workflow.ExecuteOptions{TenantID: "t2", IdempotencyKey: "invoice-42"})
		if err != nil || other.ID == ids[0] {
			t.Fatalf("another tenant's key: %v, %v; want a new run", other, err)
		}
		list, err := e.List(ctx, workflow.ListParams{Workflow: "idem"})
		if err != nil || len(list.Runs) != 2 {
			t.Fatalf("List = %+v, %v; want 2 runs", list, err)
		}
		st, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: e.Queue()})
		if err != nil || st.Pending != 2 {
			t.Fatalf("queue stats %+v, %v; want the 2 runs' first steps pending", st, err)
		}
	})
}

// Test200ConcurrentRuns: 200 runs started at once all complete.
func Test200ConcurrentRuns(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e := newEngine(t, b)
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{"a": add("a", 1), "b": add("b", 2), "c": add("c", 3)},
			workflow.Workflow{Name: "many", Steps: []workflow.Step{
				{Name: "a", Processor: "a"}, {Name: "b", Processor: "b"}, {Name: "c", Processor: "c"},
			}})
		start(t, b, e, 16)
		ctx := context.Background()
		const n = 200
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run, err := e.Execute(ctx, "many", map[string]any{"i": i}, workflow.ExecuteOptions{})
				if err != nil {
					t.Errorf("execute %d: %v", i, err)
					return
				}
				ids[i] = run.ID
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		defer func() {
			if t.Failed() {
				dumpState(t, b, e, "many")
			}
		}()
		// Bounded by progress, not by a total: 200 runs of three steps
		// took longer than 90 s under -race on a loaded machine, steadily
		// advancing.
		testwait.Progress(t, 60*time.Second, "200 runs to succeed", n, func() int {
			l, err := e.List(ctx, workflow.ListParams{Workflow: "many", State: workflow.StateSucceeded, Limit: 1000})
			if err != nil {
				t.Fatalf("list succeeded runs: %v", err)
			}
			return len(l.Runs)
		})
		for _, id := range ids {
			run, err := e.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			if err := json.Unmarshal(run.Step("c").Output, &out); err != nil || out["a"] == nil || out["b"] == nil || out["c"] == nil {
				t.Fatalf("run %s final output %s: %v", id, run.Step("c").Output, err)
			}
		}
	})
}

// TestRegisterValidation: bad workflows are rejected with an error naming
// the workflow and the step.
func TestRegisterValidation(t *testing.T) {
	b := testbroker.SQLite(t)
	e := newEngine(t, b)
	if err := e.RegisterStepProcessor("p", add("x", 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		steps []workflow.Step
		want  []string
	}{
		{"unknown-processor", []workflow.Step{{Name: "s1", Processor: "nope"}}, []string{`"unknown-processor"`, `"s1"`, `"nope"`}},
		{"duplicate", []workflow.Step{{Name: "s1", Processor: "p"}, {Name: "s1", Processor: "p"}}, []string{`"duplicate"`, `"s1"`, "twice"}},
		{"missing-dep", []workflow.Step{{Name: "s1", Processor: "p", DependsOn: []string{"ghost"}}}, []string{`"missing-dep"`, `"s1"`, `"ghost"`}},
		{"cycle", []workflow.Step{
			{Name: "s1", Processor: "p"},
			{Name: "s2", Processor: "p", DependsOn: []string{"s1", "s3"}},
			{Name: "s3", Processor: "p", DependsOn: []string{"s2"}},
		}, []string{`"cycle"`, "cycle", "s2", "s3"}},
		{"unknown-compensation", []workflow.Step{{Name: "s1", Processor: "p", Compensation: "undo"}}, []string{`"s1"`, `"undo"`}},
		{"no-steps", nil, []string{`"no-steps"`, "no steps"}},
	} {
		err := e.Register(workflow.Workflow{Name: tc.name, Steps: tc.steps})
		if err == nil {
			t.Errorf("%s: Register accepted it", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %s", tc.name, err, w)
			}
		}
	}
	if _, err := e.Execute(context.Background(), "cycle", nil, workflow.ExecuteOptions{}); err == nil {
		t.Error("a rejected workflow can be executed")
	}
	if err := e.Register(workflow.Workflow{Name: "ok", Steps: []workflow.Step{{Name: "s", Processor: "p"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Execute(context.Background(), "ok", []int{1}, workflow.ExecuteOptions{}); err == nil {
		t.Error("Execute accepted data that is not a JSON object")
	}
}
