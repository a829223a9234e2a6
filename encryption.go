package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/recovery"
)

// Encryption seals the data, results, progress and error messages of the
// jobs of chosen queues or types with AES-256-GCM envelopes (package
// envelope), each bound to its job's tenant, queue, type and id: a
// ciphertext copied to another job or tenant does not open. Give the same
// Encryption (or one with the same keys) to the Client that adds the jobs
// and the Manager that runs them: the Client seals the data once it has
// the job's id, the Manager opens it before the processor runs, so
// processors receive plaintext, and seals what the processor stores.
//
// A job of an encrypted queue or type whose data does not open (altered,
// copied from another job, sealed under a key the ring lacks) is never
// handed to a processor: it goes dead at once with the reason as its
// error. Data stored in plain text (jobs added before encryption was
// turned on) is passed through as it is; Client.RotateKeys seals it.
type Encryption struct {
	// Keys seal (with the newest) and open (with any) values. Required by
	// the Manager; a Client without them refuses the jobs it would seal.
	Keys *envelope.Ring
	// Queues lists the queues whose every job is encrypted.
	Queues []string
	// Types lists job types encrypted in whichever queue.
	Types []string
	// All encrypts every job, whatever its queue and type.
	All bool
}

// The fields an envelope binds a value to, within its job.
const (
	fieldData     = "data"
	fieldResult   = "result"
	fieldError    = "error"
	fieldProgress = "progress"
)

func (e *Encryption) check() error {
	if e.Keys == nil {
		return errors.New("encryption: key ring is nil")
	}
	return e.checkScope()
}

func (e *Encryption) checkScope() error {
	if !e.All && len(e.Queues) == 0 && len(e.Types) == 0 {
		return errors.New("encryption: no queues or types chosen (set Queues, Types or All)")
	}
	return nil
}

// Applies reports whether jobs of type typ in queue are encrypted. A nil
// Encryption encrypts nothing.
func (e *Encryption) Applies(queue, typ string) bool {
	return e != nil && (e.All || slices.Contains(e.Queues, queue) || slices.Contains(e.Types, typ))
}

func bindingOf(job *Job, field string) envelope.Binding {
	return envelope.Binding{Tenant: job.TenantID, Queue: job.Queue, Type: job.Type, JobID: job.ID, Field: field}
}

// sealJSON seals a JSON value as a JSON string holding the token, so that
// brokers, which store JSON, store it as they would any payload. Empty
// values stay empty: they say nothing.
func (e *Encryption) sealJSON(raw json.RawMessage, b envelope.Binding) (json.RawMessage, error) {
	if len(raw) == 0 {
		return raw, nil
	}
	tok, err := e.Keys.Seal(raw, b)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(`"` + tok + `"`), nil
}

// sealedToken returns the token a sealed JSON value holds, if it is one.
func sealedToken(raw json.RawMessage) (string, bool) {
	s := string(raw)
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || !envelope.IsSealed(s[1:len(s)-1]) {
		return "", false
	}
	return s[1 : len(s)-1], true
}

// openJSON opens a value sealed by sealJSON; a value that is not sealed
// is returned as it is.
func (e *Encryption) openJSON(raw json.RawMessage, b envelope.Binding) (json.RawMessage, error) {
	tok, ok := sealedToken(raw)
	if !ok {
		return raw, nil
	}
	return e.Keys.Open(tok, b)
}

// sealText seals an error message. A message that cannot be sealed is
// replaced, never stored in plain text. The message is first cut so that
// its token fits broker.MaxAttemptErrorBytes: brokers cut each attempt's
// error to that, and a cut token would not open.
func (e *Encryption) sealText(s string, b envelope.Binding) string {
	if s == "" {
		return s
	}
	// Token: prefix, key id, ':', then base64 of nonce (12), text, tag (16).
	room := (broker.MaxAttemptErrorBytes-len(envelope.Prefix)-len(e.Keys.Newest())-1)*3/4 - 28
	if len(s) > room {
		s = strings.ToValidUTF8(s[:room], "")
	}
	tok, err := e.Keys.Seal([]byte(s), b)
	if err != nil {
		return fmt.Sprintf("error message not stored: %v", err)
	}
	return tok
}

// openText opens a message sealed by sealText; other text is returned as
// it is.
func (e *Encryption) openText(s string, b envelope.Binding) (string, error) {
	if !envelope.IsSealed(s) {
		return s, nil
	}
	p, err := e.Keys.Open(s, b)
	return string(p), err
}

// OpenJob returns a copy of job with its data, result, progress and error
// messages (the last error and each attempt's) opened. Values that are
// not sealed are kept as they are. It fails, naming the field, if a
// sealed value does not open; errors wrap envelope.ErrTampered or
// envelope.ErrUnknownKey.
func (e *Encryption) OpenJob(job *Job) (*Job, error) {
	c := *job
	var err error
	if c.Data, err = e.openJSON(job.Data, bindingOf(job, fieldData)); err != nil {
		return nil, err
	}
	if c.Result, err = e.openJSON(job.Result, bindingOf(job, fieldResult)); err != nil {
		return nil, err
	}
	if c.Progress, err = e.openJSON(job.Progress, bindingOf(job, fieldProgress)); err != nil {
		return nil, err
	}
	if c.LastError, err = e.openText(job.LastError, bindingOf(job, fieldError)); err != nil {
		return nil, err
	}
	if len(job.Attempts) > 0 {
		c.Attempts = slices.Clone(job.Attempts)
		for i := range c.Attempts {
			if c.Attempts[i].Error, err = e.openText(c.Attempts[i].Error, bindingOf(job, fieldError)); err != nil {
				return nil, fmt.Errorf("attempt %d: %w", i+1, err)
			}
		}
	}
	return &c, nil
}

// undecryptable is the error a job whose data does not open fails with.
func undecryptable(err error) error {
	return fmt.Errorf("job data cannot be decrypted, not processed: %w", err)
}

// OpenResult opens a result (or progress) the Manager sealed for job; a
// value that is not sealed, or a nil Encryption, returns it as it is. For
// code that finishes jobs itself (a Finisher that passes the result on).
func (e *Encryption) OpenResult(job *Job, raw json.RawMessage) (json.RawMessage, error) {
	if e == nil || e.Keys == nil {
		return raw, nil
	}
	return e.openJSON(raw, bindingOf(job, fieldResult))
}

// OpenError opens an error message the Manager sealed for job, as
// OpenResult does a result.
func (e *Encryption) OpenError(job *Job, s string) (string, error) {
	if e == nil || e.Keys == nil {
		return s, nil
	}
	return e.openText(s, bindingOf(job, fieldError))
}

// SealInsert seals p.Data when p's queue and type are encrypted, as
// Client.Add does: for code that inserts jobs through the broker itself
// (broker.Committer's Commit). p.ID must be set. A nil Encryption does
// nothing.
func (e *Encryption) SealInsert(p *broker.JobInsertParams) error {
	if !e.Applies(p.Queue, p.Type) {
		return nil
	}
	if e.Keys == nil {
		return fmt.Errorf("%w: jobs of queue %q, type %q are encrypted and no encryption key is configured", ErrInvalidJob, p.Queue, p.Type)
	}
	if p.ID == "" {
		return fmt.Errorf("%w: seal job data: the job id is empty (the envelope binds it)", ErrInvalidJob)
	}
	data, err := e.sealJSON(p.Data, envelope.Binding{Tenant: p.TenantID, Queue: p.Queue, Type: p.Type, JobID: p.ID, Field: fieldData})
	if err != nil {
		return fmt.Errorf("encrypt job data: %w", err)
	}
	p.Data = data
	return nil
}

// loggedError is what the Manager logs of a job's error: the error itself,
// or, for a job the Encryption applies to, a description without its
// message (its error class, and whether it is a timeout, a panic or a lost
// lease), since messages may quote the data kept sealed in the store. The
// message itself is stored sealed with the attempt: read it through
// Client.Get.
func (m *Manager) loggedError(job *Job, err error) any {
	if err == nil || !m.cfg.Encryption.Applies(job.Queue, job.Type) {
		return err
	}
	return withheldText(err)
}

// ErrorText is the text of err, an attempt's error, that may leave the
// process for job (a log, a trace, a notifier): err's message, or, when e
// encrypts job's queue and type, only its kind and class, since the
// message may quote the sealed data. A nil Encryption withholds nothing.
func (e *Encryption) ErrorText(job *Job, err error) string {
	if err == nil {
		return ""
	}
	if !e.Applies(job.Queue, job.Type) {
		return err.Error()
	}
	return withheldText(err)
}

// withheldText says what kind of error err is, and its class, without its
// message.
func withheldText(err error) string {
	kind := "error"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case errors.Is(err, broker.ErrLeaseLost):
		kind = "lease lost"
	case strings.HasPrefix(err.Error(), "panic: "):
		kind = "panic"
	}
	s := kind + " (message withheld: the job is encrypted)"
	if class := recovery.ErrorType(err); class != "" {
		s = kind + " of class " + class + " (message withheld: the job is encrypted)"
	}
	return s
}

// OpenInsert opens p.Data when it was sealed by SealInsert (under p's
// tenant, queue, type and id); plain data, or a nil Encryption, leaves p
// as it is. For code that keeps insert params sealed at rest, such as a
// cron schedule's job template (package schedule).
func (e *Encryption) OpenInsert(p *broker.JobInsertParams) error {
	if e == nil || e.Keys == nil {
		return nil
	}
	data, err := e.openJSON(p.Data, envelope.Binding{Tenant: p.TenantID, Queue: p.Queue, Type: p.Type, JobID: p.ID, Field: fieldData})
	if err != nil {
		return fmt.Errorf("decrypt job data: %w", err)
	}
	p.Data = data
	return nil
}
