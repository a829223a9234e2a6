package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// Outbox states.
const (
	StateSending = "sending" // an attempt began; it may or may not have been delivered
	StateSent    = "sent"    // the server accepted it
)

// ErrContentChanged reports a message whose content differs from the one
// the outbox recorded under its Message-ID: sending it would give one
// Message-ID two contents. A retry cannot fix it.
var ErrContentChanged = errors.New("message content differs from the one recorded under its message id")

// Entry is what the outbox records of one message.
type Entry struct {
	MessageID string   `json:"messageId"`
	Tenant    string   `json:"tenant"`
	JobID     string   `json:"jobId"`
	To        []string `json:"to"`
	Subject   string   `json:"subject"`
	Hash      string   `json:"hash"`
	State     string   `json:"state"`
	// Sends counts attempts that began sending; above 1, the same message
	// may have arrived more than once.
	Sends int `json:"sends"`
}

const (
	outboxKind  = "outbox"
	outboxIndex = "all"
)

// Outbox records sent messages in a broker's document store, in one
// scope (the notifications queue), so every process sharing the broker
// sees them. It is safe for concurrent use.
type Outbox struct {
	c     broker.Committer
	scope string
}

// NewOutbox returns the outbox kept in b under scope (a queue name). It
// fails if b does not implement broker.Committer.
func NewOutbox(b broker.Broker, scope string) (*Outbox, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("new outbox: broker %T does not implement broker.Committer", b)
	}
	if err := broker.ValidateQueueName(scope); err != nil {
		return nil, fmt.Errorf("new outbox: %w", err)
	}
	return &Outbox{c: c, scope: scope}, nil
}

// Get returns the entry of a Message-ID and its version, or nil and 0 if
// the outbox has none.
func (o *Outbox) Get(ctx context.Context, messageID string) (*Entry, int64, error) {
	d, err := o.c.DocGet(ctx, o.scope, outboxKind, messageID)
	if errors.Is(err, broker.ErrDocNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read outbox entry %s: %w", messageID, err)
	}
	var e Entry
	if err := json.Unmarshal(d.Body, &e); err != nil {
		return nil, 0, fmt.Errorf("decode outbox entry %s: %w", messageID, err)
	}
	return &e, d.Version, nil
}

// List returns every entry, oldest first.
func (o *Outbox) List(ctx context.Context) ([]*Entry, error) {
	var out []*Entry
	for offset := 0; ; {
		page, err := o.c.DocList(ctx, &broker.DocListParams{Scope: o.scope, Kind: outboxKind, Index: outboxIndex, Offset: offset, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("list the outbox: %w", err)
		}
		for _, d := range page.Docs {
			var e Entry
			if err := json.Unmarshal(d.Body, &e); err != nil {
				return nil, fmt.Errorf("decode outbox entry %s: %w", d.Key, err)
			}
			out = append(out, &e)
		}
		offset += len(page.Docs)
		if len(page.Docs) == 0 || offset >= page.Total {
			return out, nil
		}
	}
}

// put writes e over the entry at version (0: it must not exist) and
// returns its new version; a concurrent writer makes it fail with
// broker.ErrConflict.
func (o *Outbox) put(ctx context.Context, e *Entry, version int64, score int64) (int64, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode outbox entry %s: %w", e.MessageID, err)
	}
	res, err := o.c.Commit(ctx, &broker.CommitParams{Scope: o.scope, Docs: []*broker.DocWrite{{
		Kind: outboxKind, Key: e.MessageID, Version: version, Body: body,
		Index: []broker.IndexEntry{{Name: outboxIndex, Score: score}},
	}}})
	if err != nil {
		return 0, fmt.Errorf("record outbox entry %s as %s: %w", e.MessageID, e.State, err)
	}
	return res.Versions[0], nil
}
