package httpproc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/workflow"
)

// Workflow returns w with callbacks: workflow.succeeded when a run
// succeeds, workflow.failed when it fails. They are sent from w's OnSuccess
// and OnError hooks, which run as jobs: the callback is inserted before
// w's own hook runs, under an id derived from the run, so a hook retried
// after a crash inserts no second one. Register the result with
// Engine.Register.
func (c *Callbacks) Workflow(w workflow.Workflow) workflow.Workflow {
	onSuccess, onError := w.OnSuccess, w.OnError
	w.OnSuccess = func(ctx context.Context, run *workflow.Run) error {
		if err := c.insertRun(ctx, run, EventWorkflowSucceeded); err != nil {
			return err
		}
		if onSuccess != nil {
			return onSuccess(ctx, run)
		}
		return nil
	}
	w.OnError = func(ctx context.Context, run *workflow.Run) error {
		if err := c.insertRun(ctx, run, EventWorkflowFailed); err != nil {
			return err
		}
		if onError != nil {
			return onError(ctx, run)
		}
		return nil
	}
	return w
}

// CancelRun cancels a workflow run with e.Cancel and inserts its
// workflow.cancelled callback; the admin API calls it. The two are not one
// commit, so a caller that got an error calls again: a run found already
// cancelled still gets its callback (once: the callback's id derives from
// the run). It returns e.Cancel's errors, e.g. worker.ErrWrongState for a
// run that succeeded or failed.
func (c *Callbacks) CancelRun(ctx context.Context, e *workflow.Engine, runID string) (*workflow.Run, error) {
	if e == nil {
		return nil, fmt.Errorf("httpproc: cancel run %s: engine is nil", runID)
	}
	run, err := e.Cancel(ctx, runID)
	if errors.Is(err, worker.ErrWrongState) {
		if got, getErr := e.Get(ctx, runID); getErr == nil && got.State == workflow.StateCancelled {
			run, err = got, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if err := c.insertRun(ctx, run, EventWorkflowCancelled); err != nil {
		return run, fmt.Errorf("httpproc: cancel run %s: %w", runID, err)
	}
	return run, nil
}

// insertRun inserts the callback about run; one that exists already is
// the same callback, inserted by an earlier try.
func (c *Callbacks) insertRun(ctx context.Context, run *workflow.Run, event string) error {
	cb := Callback{Type: event, Time: c.cfg.Now().UTC(), Run: &CallbackRun{ID: run.ID, Workflow: run.Workflow,
		Queue: run.Queue, TenantID: run.TenantID, CompanyID: run.CompanyID, FailedStep: run.FailedStep}}
	switch event {
	case EventWorkflowSucceeded:
		outputs := map[string]json.RawMessage{}
		for _, s := range run.Steps {
			if len(s.Output) > 0 {
				outputs[s.Name] = s.Output
			}
		}
		cb.Result, _ = json.Marshal(outputs) // raw JSON values always marshal
	case EventWorkflowFailed:
		cb.Error = run.Error
	}
	body, err := json.Marshal(cb)
	if err != nil {
		return fmt.Errorf("encode %s callback of run %s: %w", event, run.ID, err)
	}
	_, err = c.b.JobInsert(ctx, &broker.JobInsertParams{ID: CallbackRunID(run.ID), Queue: run.Queue, Type: CallbackType,
		Data: body, MaxAttempts: c.cfg.MaxAttempts, TenantID: run.TenantID, CompanyID: run.CompanyID})
	if err != nil && !errors.Is(err, worker.ErrDuplicate) {
		return fmt.Errorf("insert %s callback of run %s: %w", event, run.ID, err)
	}
	return nil
}
