package notify

import (
	"context"
	"errors"
	"fmt"
)

// Mailer sends each message at most once in effect: it checks and records
// every send in its Outbox (see the package documentation). It is safe for
// concurrent use; two concurrent sends of one Message-ID are told apart
// by the outbox's compare-and-set, and the loser gets an error wrapping
// broker.ErrConflict (a retry then finds the message sent).
type Mailer struct {
	sender Sender
	outbox *Outbox
}

// NewMailer returns a Mailer sending through s and recording in o.
func NewMailer(s Sender, o *Outbox) (*Mailer, error) {
	if s == nil || o == nil {
		return nil, errors.New("new mailer: sender and outbox are required")
	}
	return &Mailer{sender: s, outbox: o}, nil
}

// Outbox returns the mailer's outbox.
func (m *Mailer) Outbox() *Outbox { return m.outbox }

// Result says what Send did.
type Result struct {
	MessageID string `json:"messageId"`
	// AlreadySent: the outbox held the message as sent; nothing was sent.
	AlreadySent bool `json:"alreadySent,omitempty"`
	// Resent: an earlier attempt began sending and was not recorded as
	// sent, so the same message (same Message-ID and content) was sent
	// again and may arrive twice.
	Resent bool `json:"resent,omitempty"`
}

// Send sends msg for the job jobID of tenant unless the outbox holds it as
// sent. It returns an error wrapping ErrContentChanged if the outbox holds
// another content under msg's Message-ID.
func (m *Mailer) Send(ctx context.Context, tenant, jobID string, msg *Message) (*Result, error) {
	if err := msg.Validate(); err != nil {
		return nil, fmt.Errorf("send message of job %s: %w", jobID, err)
	}
	res := &Result{MessageID: msg.MessageID}
	hash := msg.Hash()
	e, version, err := m.outbox.Get(ctx, msg.MessageID)
	if err != nil {
		return nil, err
	}
	if e != nil && e.Hash != hash {
		return nil, fmt.Errorf("send message %s of job %s: %w", msg.MessageID, jobID, ErrContentChanged)
	}
	if e != nil && e.State == StateSent {
		res.AlreadySent = true
		return res, nil
	}
	if e == nil {
		e = &Entry{MessageID: msg.MessageID, Tenant: tenant, JobID: jobID, To: msg.To, Subject: msg.Subject, Hash: hash}
	}
	res.Resent = e.Sends > 0
	e.State, e.Sends = StateSending, e.Sends+1
	score := msg.Date.UnixMilli()
	version, err = m.outbox.put(ctx, e, version, score)
	if err != nil {
		return nil, err
	}
	if err := m.sender.Send(ctx, msg); err != nil {
		return nil, err
	}
	e.State = StateSent
	if _, err := m.outbox.put(ctx, e, version, score); err != nil {
		return nil, err
	}
	return res, nil
}
