package workflow

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
)

// finisher finishes a run's job through the run store, so that a step's
// completion and the enqueue of the steps it unblocks are one commit.
type finisher struct {
	store *runstore.Store
	run   string
	snap  *runstore.Snapshot // the run as the step read it: usually still current
	job   *worker.Job        // the attempt's record, for the run's document
}

func (f finisher) Complete(ctx context.Context, p *broker.JobCompleteParams) error {
	return f.store.WorkflowJobCompleteFrom(ctx, f.snap, &broker.WorkflowJobCompleteParams{JobCompleteParams: *p, Run: f.run,
		Attempt: f.job.Attempt, StartedAt: f.job.StartedAt})
}

func (f finisher) Fail(ctx context.Context, p *broker.JobFailParams) (broker.State, error) {
	return f.store.WorkflowJobFail(ctx, &broker.WorkflowJobFailParams{JobFailParams: *p, Run: f.run})
}

// process runs one job of a run: a step, a compensation or a hook.
func (e *Engine) process(ctx context.Context, job *worker.Job) error {
	var d jobData
	if err := worker.Decode(job, &d); err != nil || d.Run == "" {
		return worker.NoRetry(fmt.Errorf("workflow job %s: payload does not name a run: %v", job.ID, err))
	}
	if err := worker.SetFinisher(ctx, finisher{store: e.store, run: d.Run, job: job}); err != nil {
		return err
	}
	w, ok := e.workflow(d.Workflow)
	if !ok {
		return fmt.Errorf("run %s: workflow %q is not registered in this worker", d.Run, d.Workflow)
	}
	// A hook gets the whole run, step states and all. A step needs only the
	// outputs the run's document holds, and its completion starts from the
	// same read.
	// A hook's completion starts from the same read too.
	var run *Run
	var snap *runstore.Snapshot
	var err error
	if job.Type == JobTypeHook {
		snap, run, err = e.store.LoadLive(ctx, job.Queue, d.Run)
	} else if snap, err = e.store.Load(ctx, job.Queue, d.Run); err == nil {
		run = snap.Run()
	}
	if err == nil {
		err = worker.SetFinisher(ctx, finisher{store: e.store, run: d.Run, snap: snap, job: job})
	}
	if err != nil {
		return fmt.Errorf("read run %s: %w", d.Run, err)
	}
	// The snapshot stays sealed: the step's completion writes it back.
	opened, err := e.open(run)
	if err != nil {
		if e.cfg.OnUndecryptable != nil {
			e.cfg.OnUndecryptable(ctx, run, err)
		}
		return worker.NoRetry(fmt.Errorf("run data cannot be decrypted, step not run: %w", err))
	}
	run = opened
	switch job.Type {
	case JobTypeHook:
		return e.runHook(ctx, w, run, d.Hook)
	case JobTypeStep, JobTypeCompensation:
	default:
		return worker.NoRetry(fmt.Errorf("run %s: unknown workflow job type %q", d.Run, job.Type))
	}
	step, ok := w.step(d.Step)
	if !ok {
		return worker.NoRetry(fmt.Errorf("run %s: workflow %q has no step %q", d.Run, w.Name, d.Step))
	}
	// The attempt's span, when package tracing runs one, says which step
	// it is; without tracing this is a no-op span.
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("aibos_worker.workflow.name", w.Name),
		attribute.String("aibos_worker.workflow.run_id", run.ID), attribute.String("aibos_worker.workflow.step", step.Name),
		attribute.Bool("aibos_worker.workflow.compensating", job.Type == JobTypeCompensation))
	limit := stepLimit(job, d)
	if job.Attempt > limit {
		return worker.NoRetry(fmt.Errorf("run %s, step %q: no attempts left: attempt %d of %d ended when its lease expired (its worker died or lost touch with the broker)",
			d.Run, step.Name, job.Attempt-1, limit))
	}
	info := &StepInfo{RunID: run.ID, Workflow: w.Name, Step: *step, TenantID: run.TenantID,
		Attempt: job.Attempt, MaxAttempts: limit, Compensating: job.Type == JobTypeCompensation}
	var data Data
	name := step.Processor
	if info.Compensating {
		name = step.Compensation
		data, err = compensationInput(run, step.Name)
	} else {
		data, err = StepInput(run, step.Name)
	}
	if err != nil {
		return worker.NoRetry(err)
	}
	p := e.processor(name)
	if p == nil {
		return fmt.Errorf("run %s, step %q: step processor %q is not registered in this worker", d.Run, step.Name, name)
	}
	began := time.Now()
	out, err := p.Process(ctx, info, data)
	e.emit(Event{Kind: EventStepFinished, Workflow: w.Name, RunID: run.ID, Step: step.Name,
		Compensating: info.Compensating, Duration: time.Since(began), Err: err})
	if err != nil {
		switch {
		case job.Attempt >= limit:
			// The job's spare attempts are not the step's to use.
			return worker.NoRetry(err)
		case step.RetryDelay > 0:
			return worker.RetryAfter(step.RetryDelay, err)
		}
		return err
	}
	if out == nil {
		out = Data{}
	}
	if err := worker.SetResult(ctx, out); err != nil {
		return worker.NoRetry(fmt.Errorf("run %s, step %q: store output: %w", d.Run, step.Name, err))
	}
	return nil
}

// stepLimit returns the attempts of the step (or compensation) job carries:
// the step's RetryAttempts, its job's MaxAttempts less spareAttempts.
func stepLimit(job *worker.Job, d jobData) int {
	if d.Attempts > 0 {
		return d.Attempts
	}
	return job.MaxAttempts // a run started before jobData.Attempts: no spares
}

// compensationInput is the run's input merged with the step's output.
func compensationInput(run *Run, step string) (Data, error) {
	in, err := decodeData(run.Input)
	if err != nil {
		return nil, err
	}
	if s := run.Step(step); s != nil {
		out, err := decodeData(s.Output)
		if err != nil {
			return nil, err
		}
		for k, v := range out {
			in[k] = v
		}
	}
	return in, nil
}

func (e *Engine) runHook(ctx context.Context, w *Workflow, run *Run, hook string) error {
	switch {
	case hook == "success" && w.OnSuccess != nil:
		return w.OnSuccess(ctx, run)
	case hook == "error" && w.OnError != nil:
		return w.OnError(ctx, run)
	}
	return nil
}
