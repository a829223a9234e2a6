package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/workflow"
)

const runMarker = "RUN-MARKER-GB29NWBK60161331926819"

// encryptedEngine returns an engine whose queue is encrypted, a Manager
// config with the same Encryption, and the Encryption.
func encryptedEngine(t *testing.T, b broker.Broker, onUndecryptable func(context.Context, *workflow.Run, error)) (*workflow.Engine, *worker.Encryption) {
	t.Helper()
	k, err := envelope.NewKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := envelope.NewRing(k)
	if err != nil {
		t.Fatal(err)
	}
	enc := &worker.Encryption{Keys: ring, Queues: []string{workflow.DefaultQueue}}
	e, err := workflow.NewEngine(b, workflow.Config{Logger: discardLogger, Encryption: enc, OnUndecryptable: onUndecryptable})
	if err != nil {
		t.Fatal(err)
	}
	return e, enc
}

// startSealed starts a Manager with enc attached to e.
func startSealed(t *testing.T, b broker.Broker, e *workflow.Engine, enc *worker.Encryption) {
	t.Helper()
	cfg := managerConfig(e.Queue(), 4)
	cfg.Encryption = enc
	startWith(t, b, e, cfg)
}

// rawRun reads a run's document as stored.
func rawRun(t *testing.T, b broker.Broker, id string) *broker.Doc {
	t.Helper()
	d, err := b.(broker.Committer).DocGet(context.Background(), workflow.DefaultQueue, "run", id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEncryptedRunsPassPlaintextBetweenSteps: with the workflow queue
// encrypted, a step receives the run's input and the output of the step
// before it in plain text (StepInput of a run whose outputs are sealed),
// the hooks and Get see the run opened, and the stored document holds
// the input, the output and the errors sealed only.
func TestEncryptedRunsPassPlaintextBetweenSteps(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		e, enc := encryptedEngine(t, b, nil)
		var mu sync.Mutex
		var postGot workflow.Data
		var failedHook *workflow.Run
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"validate": add("checked", "iban "+runMarker),
			"post": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				mu.Lock()
				postGot = d
				mu.Unlock()
				return d, nil
			},
			"reject": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				return nil, worker.NoRetry(fmt.Errorf("bank rejected %s", runMarker))
			},
		}, workflow.Workflow{Name: "pay", Steps: []workflow.Step{
			{Name: "validate", Processor: "validate"}, {Name: "post", Processor: "post"},
		}})
		if err := e.Register(workflow.Workflow{Name: "refuse", Steps: []workflow.Step{{Name: "reject", Processor: "reject", RetryAttempts: 1}},
			OnError: func(ctx context.Context, run *workflow.Run) error {
				mu.Lock()
				failedHook = run
				mu.Unlock()
				return nil
			}}); err != nil {
			t.Fatal(err)
		}
		startSealed(t, b, e, enc)
		ctx := context.Background()
		input := map[string]string{"customer": runMarker}
		ok, err := e.Execute(ctx, "pay", input, workflow.ExecuteOptions{TenantID: "t1"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(ok.Input, []byte(runMarker)) {
			t.Errorf("Execute returned the input %s, want it opened", ok.Input)
		}
		bad, err := e.Execute(ctx, "refuse", input, workflow.ExecuteOptions{TenantID: "t1"})
		if err != nil {
			t.Fatal(err)
		}
		done := waitRun(t, e, ok.ID, workflow.StateSucceeded)
		failed := waitRun(t, e, bad.ID, workflow.StateFailed)

		waitFor(t, 20*time.Second, "the OnError hook", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return failedHook != nil
		})
		mu.Lock()
		if postGot["customer"] != runMarker || postGot["checked"] != "iban "+runMarker {
			t.Errorf("step post got %v, want the run's input and validate's output in plain text", postGot)
		}
		if failedHook == nil || !strings.Contains(failedHook.Error, runMarker) {
			t.Errorf("OnError got run %+v, want its error opened", failedHook)
		}
		mu.Unlock()
		if !bytes.Contains(done.Input, []byte(runMarker)) || !bytes.Contains(done.Step("validate").Output, []byte(runMarker)) {
			t.Errorf("Get: input %s, validate's output %s; want both opened", done.Input, done.Step("validate").Output)
		}
		if !strings.Contains(failed.Error, runMarker) || !strings.Contains(failed.Step("reject").Error, runMarker) {
			t.Errorf("Get of the failed run: error %q, step error %q; want both opened", failed.Error, failed.Step("reject").Error)
		}
		page, err := e.Page(ctx, workflow.PageParams{Workflow: "pay"})
		if err != nil || len(page.Runs) != 1 || !bytes.Contains(page.Runs[0].Input, []byte(runMarker)) {
			t.Errorf("Page: %+v, %v; want the run with its input opened", page, err)
		}
		for _, id := range []string{ok.ID, bad.ID} {
			d := rawRun(t, b, id)
			if bytes.Contains(d.Body, []byte(runMarker)) || !bytes.Contains(d.Body, []byte(envelope.Prefix+"k1:")) {
				t.Errorf("run %s is stored as %s: want its values sealed", id, d.Body)
			}
		}
		// StepInput of a run read without keys says why it cannot help.
		sealed := &workflow.Run{ID: "r", Input: rawInput(t, b, ok.ID), Steps: []*workflow.RunStep{{WorkflowStepDef: broker.WorkflowStepDef{Name: "s"}}}}
		if _, err := workflow.StepInput(sealed, "s"); err == nil || !strings.Contains(err.Error(), "encrypted") {
			t.Errorf("StepInput of a sealed run: %v, want an error saying it is encrypted", err)
		}
	})
}

func rawInput(t *testing.T, b broker.Broker, id string) json.RawMessage {
	var r workflow.Run
	if err := json.Unmarshal(rawRun(t, b, id).Body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Input
}

// TestMovedRunOutputFailsTheRun copies a step's sealed output from one
// tenant's run into another tenant's run before the next step reads it:
// the output does not open there, the next step does not run, the run
// fails saying why, and OnUndecryptable is told.
func TestMovedRunOutputFailsTheRun(t *testing.T) {
	eachEngine(t, func(t *testing.T, b broker.Broker) {
		told := make(chan error, 4)
		e, enc := encryptedEngine(t, b, func(ctx context.Context, run *workflow.Run, err error) { told <- err })
		release := make(chan struct{})
		var mu sync.Mutex
		postRan := 0
		mustRegister(t, e, map[string]workflow.StepProcessorFunc{
			"validate": add("checked", runMarker),
			"hold": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				if s.TenantID == "victim" {
					select {
					case <-release:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return workflow.Data{}, nil
			},
			"post": func(ctx context.Context, s *workflow.StepInfo, d workflow.Data) (workflow.Data, error) {
				mu.Lock()
				postRan++
				mu.Unlock()
				return d, nil
			},
		}, workflow.Workflow{Name: "pay", Steps: []workflow.Step{
			{Name: "validate", Processor: "validate"}, {Name: "hold", Processor: "hold"},
			{Name: "post", Processor: "post", DependsOn: []string{"validate", "hold"}},
		}})
		startSealed(t, b, e, enc)
		ctx := context.Background()
		donor, err := e.Execute(ctx, "pay", map[string]string{"a": "b"}, workflow.ExecuteOptions{TenantID: "other"})
		if err != nil {
			t.Fatal(err)
		}
		waitRun(t, e, donor.ID, workflow.StateSucceeded)
		victim, err := e.Execute(ctx, "pay", map[string]string{"a": "b"}, workflow.ExecuteOptions{TenantID: "victim"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the victim's validate step to complete", func() bool {
			r, err := e.Get(ctx, victim.ID)
			return err == nil && r.Step("validate").State == workflow.StepCompleted
		})
		// Move the donor's sealed output into the victim's run.
		var from, to map[string]any
		if err := json.Unmarshal(rawRun(t, b, donor.ID).Body, &from); err != nil {
			t.Fatal(err)
		}
		d := rawRun(t, b, victim.ID)
		if err := json.Unmarshal(d.Body, &to); err != nil {
			t.Fatal(err)
		}
		to["steps"].([]any)[0].(map[string]any)["output"] = from["steps"].([]any)[0].(map[string]any)["output"]
		body, _ := json.Marshal(to)
		if _, err := b.(broker.Committer).Commit(ctx, &broker.CommitParams{Scope: workflow.DefaultQueue,
			Docs: []*broker.DocWrite{{Kind: "run", Key: victim.ID, Version: d.Version, Body: body}}}); err != nil {
			t.Fatal(err)
		}
		close(release)
		failed := waitRun(t, e, victim.ID, workflow.StateFailed)
		if failed.FailedStep != "post" || !strings.Contains(failed.Error, "cannot be decrypted") || !strings.Contains(failed.Error, `step "validate"`) {
			t.Errorf("run failed at %q with %q; want post failed, saying validate's output cannot be decrypted", failed.FailedStep, failed.Error)
		}
		select {
		case err := <-told:
			if !errors.Is(err, envelope.ErrTampered) {
				t.Errorf("OnUndecryptable got %v, want envelope.ErrTampered", err)
			}
		default:
			t.Error("OnUndecryptable was not told")
		}
		mu.Lock()
		defer mu.Unlock()
		if postRan != 1 {
			t.Errorf("step post ran %d times, want once (the donor's run only)", postRan)
		}
	})
}
