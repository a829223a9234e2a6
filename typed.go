package worker

import (
	"context"
	"encoding/json"
	"fmt"
)

// Args is a job payload that names its job type, as River's JobArgs: a
// struct whose Kind is the job's Type and whose JSON encoding is the job's
// Data. Register binds a processor to it and Add enqueues it, so the type
// name and the payload's shape are declared once.
//
//	type SendInvoice struct {
//		InvoiceID string `json:"invoiceId"`
//	}
//
//	func (SendInvoice) Kind() string { return "invoice.send" }
//
// Kind is called on T's zero value, so it must return a constant and not
// depend on the fields (declare it on the value, not on a pointer).
type Args interface {
	Kind() string
}

// JobOf is a job whose Data has been decoded into its Args. The embedded
// Job is the processor's own copy, as for a Processor.
type JobOf[T Args] struct {
	*Job
	// Args is the job's Data, decoded.
	Args T
}

// Register makes f the processor of jobs of T's Kind on m: each job's Data
// is decoded into a T, and f gets both. A job whose Data does not decode
// into a T fails at once, without retries (NoRetry): a retry would read the
// same bytes. Like Manager.Register, it must be called before Start, and a
// kind registers once.
func Register[T Args](m *Manager, f func(ctx context.Context, job *JobOf[T]) error) error {
	kind, err := kindOf[T]()
	if err != nil {
		return &WorkerError{WorkerID: m.ID(), Op: "register processor", Err: err}
	}
	if f == nil {
		return m.Register(kind, nil)
	}
	return m.Register(kind, ProcessorFunc(func(ctx context.Context, job *Job) error {
		var args T
		if err := json.Unmarshal(job.Data, &args); err != nil {
			return NoRetry(&JobError{JobID: job.ID, Type: job.Type, Op: "decode data of",
				Err: fmt.Errorf("%w: payload is not a %T: %v", ErrInvalidJob, args, err)})
		}
		return f(ctx, &JobOf[T]{Job: job, Args: args})
	}))
}

// Add adds a job of args' Kind with args as its Data to queue, as
// Client.Add does. spec supplies the other fields; its Type must be empty
// or the Kind, and its Data must be nil.
func Add[T Args](ctx context.Context, c *Client, queue string, args T, spec JobSpec) (*Job, error) {
	kind, err := kindOf[T]()
	if err == nil {
		switch {
		case spec.Type != "" && spec.Type != kind:
			err = fmt.Errorf("%w: spec type %q differs from the args' kind %q", ErrInvalidJob, spec.Type, kind)
		case spec.Data != nil:
			err = fmt.Errorf("%w: spec data is set; args are the data", ErrInvalidJob)
		}
	}
	if err != nil {
		return nil, &JobError{Type: kind, Op: "add", Err: err}
	}
	spec.Type, spec.Data = kind, args
	return c.Add(ctx, queue, spec)
}

// kindOf returns T's Kind, or an error if it is empty or Kind panics
// (a Kind declared on a pointer that reads a field).
func kindOf[T Args]() (kind string, err error) {
	var zero T
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%T.Kind panicked on the zero value (declare Kind on the value and return a constant): %v", zero, v)
		}
	}()
	kind = zero.Kind()
	if kind == "" {
		return "", fmt.Errorf("%T.Kind returned an empty job type", zero)
	}
	return kind, nil
}
