package broker

import (
	"context"
	"fmt"
	"time"
)

// LeaderStore is an optional capability of a Broker: named leases that at
// most one holder has at a time, on the broker's clock. Package worker uses
// it to elect one Manager per queue to run QueueMaintain; a holder that dies
// stops extending its lease and another takes over once it expires. Both
// brokers of this module implement it; test for it with a type assertion.
// Without it, every Manager maintains every queue it serves (QueueMaintain
// is safe to run from many workers at once, only wasteful).
//
// A lease is a hint that saves work, not a lock that guards data: a holder
// stalled past its TTL may still be running when the next one starts.
type LeaderStore interface {
	// LeaderAcquire takes the lease p.Name for p.Holder until the broker's
	// now + p.TTL if nobody holds it or its lease has expired, or extends it
	// to now + p.TTL if p.Holder holds it already. It reports whether
	// p.Holder holds the lease when the call returns; false (and a nil
	// error) means another holder's lease is live. Safe for concurrent use
	// by many processes. Returns an *InvalidError if p fails Validate,
	// ErrClosed after Close, and storage failures wrapped.
	LeaderAcquire(ctx context.Context, p *LeaderParams) (held bool, err error)

	// LeaderRelease gives the lease p.Name up at once if p.Holder holds it,
	// so the next LeaderAcquire of any holder succeeds; it does nothing if
	// another holder has it or nobody does. p.TTL is ignored. Errors as for
	// LeaderAcquire.
	LeaderRelease(ctx context.Context, p *LeaderParams) error
}

// LeaderParams names a lease and who asks for it.
type LeaderParams struct {
	// Name identifies the lease, e.g. "maintain.invoices". Letters,
	// digits and "._-:", at most MaxQueueNameLen+32 bytes.
	Name string
	// Holder identifies the caller, e.g. a Manager's worker id. Any
	// printable text up to MaxKeyLen bytes.
	Holder string
	// TTL is how long the lease lasts without another LeaderAcquire. It
	// must be at least a millisecond for LeaderAcquire.
	TTL time.Duration
}

// Validate checks p for LeaderAcquire (forAcquire) or LeaderRelease and
// returns an *InvalidError naming the first bad field.
func (p *LeaderParams) Validate(forAcquire bool) error {
	bad := func(field string, err error) error {
		return &InvalidError{Index: -1, Field: field, Reason: err.Error()}
	}
	if p == nil {
		return &InvalidError{Index: -1, Field: "leader", Reason: "params are nil"}
	}
	if err := validateName("leader name", p.Name, MaxQueueNameLen+32); err != nil {
		return bad("name", err)
	}
	if err := checkText("holder", p.Holder, MaxKeyLen, true); err != nil {
		return bad("holder", err)
	}
	if forAcquire && p.TTL < time.Millisecond {
		return bad("ttl", fmt.Errorf("ttl %v is below 1ms", p.TTL))
	}
	return nil
}
