package worker

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
)

// A workflow run's document (package workflow) holds the run's input, each
// step's output and error, and the run's error: customer data as much as
// a job's payload. The input is sealed by the engine when the run starts,
// bound to the run (tenant, queue, workflow, run id, field "input"); a
// step's output and error are sealed by the Manager as the result and
// error of the step's job, bound to that job (tenant, queue, type, the job
// id, which names the run and the step), and stored in the run as they
// are. So a ciphertext moved to another run, step, field or tenant does
// not open.

// fieldInput is the field a run's input is sealed under.
const fieldInput = "input"

func runInputBinding(run *broker.WorkflowRun) envelope.Binding {
	return envelope.Binding{Tenant: run.TenantID, Queue: run.Queue, Type: run.Workflow, JobID: run.ID, Field: fieldInput}
}

// stepJob is the job that carries step st of run, as far as its envelopes
// are bound to it.
func stepJob(run *broker.WorkflowRun, st *broker.WorkflowStep) *Job {
	return &Job{ID: st.Job.ID, Queue: run.Queue, Type: st.Job.Type, TenantID: run.TenantID}
}

// SealRunInput seals p.Input, the input of a workflow run about to be
// created, under the run's tenant, queue, workflow and id. The caller
// decides whether the run is encrypted (package workflow: when the
// Encryption applies to the run's queue and step job type). It fails
// without keys.
func (e *Encryption) SealRunInput(p *broker.WorkflowRunCreateParams) error {
	if e == nil || e.Keys == nil {
		return fmt.Errorf("%w: runs of queue %q are encrypted and no encryption key is configured", ErrInvalidJob, p.Queue)
	}
	run := &broker.WorkflowRun{ID: p.ID, Queue: p.Queue, Workflow: p.Workflow, TenantID: p.TenantID}
	in, err := e.sealJSON(p.Input, runInputBinding(run))
	if err != nil {
		return fmt.Errorf("encrypt run input: %w", err)
	}
	p.Input = in
	return nil
}

// OpenRun returns a copy of run with its input, its steps' outputs and
// errors and its error opened; values that are not sealed are kept as
// they are, and a nil Encryption or one without keys returns run itself.
// A sealed value that does not open is kept sealed in the copy, and the
// first such value is reported, by name, in the error, which wraps
// envelope.ErrTampered or envelope.ErrUnknownKey: the copy is then for
// showing (the run's error may say why it failed), not for processing.
func (e *Encryption) OpenRun(run *broker.WorkflowRun) (*broker.WorkflowRun, error) {
	if e == nil || e.Keys == nil || run == nil {
		return run, nil
	}
	c := *run
	c.Steps = make([]*broker.WorkflowStep, len(run.Steps))
	for i, st := range run.Steps {
		s := *st
		c.Steps[i] = &s
	}
	var first error
	err := e.eachRunValue(&c, func(v runValue) error {
		var err error
		if v.json != nil {
			var raw json.RawMessage
			if raw, err = e.openJSON(*v.json, v.bind); err == nil {
				*v.json = raw
			}
		} else {
			var s string
			if s, err = e.openText(*v.text, v.bind); err == nil {
				*v.text = s
			}
		}
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", v.name, err)
		}
		return nil
	})
	if err == nil {
		err = first
	}
	if err != nil {
		return &c, fmt.Errorf("run %s: %w", run.ID, err)
	}
	return &c, nil
}

// runValue is one sealable value of a run: a JSON value or a text, with
// its binding and its name for errors.
type runValue struct {
	name string
	json *json.RawMessage
	text *string
	bind envelope.Binding
}

// eachRunValue calls f with each value of run that may be sealed, in
// place, and stops at the first error, naming the value.
func (e *Encryption) eachRunValue(run *broker.WorkflowRun, f func(v runValue) error) error {
	vals := []runValue{{name: "input", json: &run.Input, bind: runInputBinding(run)}}
	for _, st := range run.Steps {
		j := stepJob(run, st)
		vals = append(vals, runValue{name: fmt.Sprintf("output of step %q", st.Name), json: &st.Output, bind: bindingOf(j, fieldResult)},
			runValue{name: fmt.Sprintf("error of step %q", st.Name), text: &st.Error, bind: bindingOf(j, fieldError)})
	}
	if st := run.Step(run.FailedStep); st != nil {
		vals = append(vals, runValue{name: "error", text: &run.Error, bind: bindingOf(stepJob(run, st), fieldError)})
	} else if envelope.IsSealed(run.Error) {
		return errors.New("error: sealed, and the run names no failed step it belongs to")
	}
	for _, v := range vals {
		if err := f(v); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return nil
}

// resealRun re-seals, in place, every value of run sealed under an older
// key than the newest, and, when sealPlain, seals its plain values (a run
// stored before its queue was encrypted). It returns how many values it
// changed; it fails if a sealed value does not open.
func (e *Encryption) resealRun(run *broker.WorkflowRun, sealPlain bool) (int, error) {
	n := 0
	err := e.eachRunValue(run, func(v runValue) error {
		var changed bool
		var err error
		if v.json != nil {
			*v.json, changed, err = e.resealJSON(*v.json, v.bind, sealPlain)
		} else {
			*v.text, changed, err = e.resealText(*v.text, v.bind, sealPlain)
		}
		if changed {
			n++
		}
		return err
	})
	return n, err
}

// resealJSON returns raw re-sealed under the newest key and true when it
// is sealed under an older one, or sealed when it is plain and sealPlain;
// else raw and false. Empty and null values stay. It fails if raw does not
// open under b.
func (e *Encryption) resealJSON(raw json.RawMessage, b envelope.Binding, sealPlain bool) (json.RawMessage, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return raw, false, nil
	}
	plain := raw
	if tok, ok := sealedToken(raw); ok {
		if id, _ := envelope.KeyID(tok); id == e.Keys.Newest() {
			return raw, false, nil
		}
		var err error
		if plain, err = e.Keys.Open(tok, b); err != nil {
			return raw, false, err
		}
	} else if !sealPlain {
		return raw, false, nil
	}
	sealed, err := e.sealJSON(plain, b)
	if err != nil {
		return raw, false, err
	}
	return sealed, true, nil
}

// resealText is resealJSON for an error message (see sealText).
func (e *Encryption) resealText(s string, b envelope.Binding, sealPlain bool) (string, bool, error) {
	if s == "" {
		return s, false, nil
	}
	plain := s
	if envelope.IsSealed(s) {
		if id, _ := envelope.KeyID(s); id == e.Keys.Newest() {
			return s, false, nil
		}
		raw, err := e.Keys.Open(s, b)
		if err != nil {
			return s, false, err
		}
		plain = string(raw)
	} else if !sealPlain {
		return s, false, nil
	}
	return e.sealText(plain, b), true, nil
}
