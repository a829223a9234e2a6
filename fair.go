package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// errNoFairness is the error of a fairness call on a broker without it.
var errNoFairness = errors.New("the broker does not implement broker.FairBroker (fair scheduling and tenant caps)")

// turnFairOn stores Fair on for every queue configured with it whose
// stored policy has it off, keeping the stored weights and caps.
func (m *Manager) turnFairOn(ctx context.Context) error {
	for _, q := range m.cfg.Queues {
		if !q.Fair {
			continue
		}
		fb, ok := m.b.(broker.FairBroker)
		if !ok {
			return fmt.Errorf("queue %q asks for fairness: %w", q.Name, errNoFairness)
		}
		p, err := fb.QueueFairGet(ctx, q.Name)
		if err != nil {
			return fmt.Errorf("read fair policy of queue %q: %w", q.Name, err)
		}
		if p.Fair {
			continue
		}
		p.Fair = true
		if err := fb.QueueFairSet(ctx, p); err != nil {
			return fmt.Errorf("turn fairness on for queue %q: %w", q.Name, err)
		}
	}
	return nil
}

// SetFairPolicy stores how a queue shares its workers between tenants:
// fairness on or off, tenants' weights and caps (broker.FairPolicy). Every
// worker applies it from its next fetch. It returns an error wrapping
// ErrInvalidJob naming the bad field if p is invalid, and a *QueueError if
// the client is scoped to a tenant, or the broker cannot store it (or does
// not implement broker.FairBroker).
func (c *Client) SetFairPolicy(ctx context.Context, p *broker.FairPolicy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("worker: set fair policy: %w", err)
	}
	if c.tenant != "" {
		return &QueueError{Queue: p.Queue, Op: "set fair policy", Err: fmt.Errorf("a client scoped to tenant %q cannot change how tenants share a queue", c.tenant)}
	}
	fb, ok := c.b.(broker.FairBroker)
	if !ok {
		return &QueueError{Queue: p.Queue, Op: "set fair policy", Err: errNoFairness}
	}
	if err := fb.QueueFairSet(ctx, p); err != nil {
		return &QueueError{Queue: p.Queue, Op: "set fair policy", Err: err}
	}
	return nil
}

// FairPolicy returns the policy stored for queue (the zero policy, fairness
// off and no caps, for a queue never given one).
func (c *Client) FairPolicy(ctx context.Context, queue string) (*broker.FairPolicy, error) {
	fb, ok := c.b.(broker.FairBroker)
	if !ok {
		return nil, &QueueError{Queue: queue, Op: "get fair policy", Err: errNoFairness}
	}
	p, err := fb.QueueFairGet(ctx, queue)
	if err != nil {
		return nil, &QueueError{Queue: queue, Op: "get fair policy", Err: err}
	}
	return p, nil
}

// PauseTenant stops every worker leasing tenant's jobs of queue; they wait
// pending at their place while the other tenants' jobs run, and adds still
// succeed. ResumeTenant undoes it; both are idempotent. A client scoped to
// a tenant may pause only its own. Errors are *QueueError (ErrInvalidJob
// for a bad queue name or tenant id).
func (c *Client) PauseTenant(ctx context.Context, queue, tenant string) error {
	return c.pauseTenant(ctx, queue, tenant, true)
}

// ResumeTenant lets workers lease tenant's jobs of queue again; see
// PauseTenant.
func (c *Client) ResumeTenant(ctx context.Context, queue, tenant string) error {
	return c.pauseTenant(ctx, queue, tenant, false)
}

func (c *Client) pauseTenant(ctx context.Context, queue, tenant string, paused bool) error {
	op := "pause tenant of"
	if !paused {
		op = "resume tenant of"
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	if c.tenant != "" && tenant != c.tenant {
		return &QueueError{Queue: queue, Op: op, Err: fmt.Errorf("a client scoped to tenant %q cannot act on tenant %q", c.tenant, tenant)}
	}
	fb, ok := c.b.(broker.FairBroker)
	if !ok {
		return &QueueError{Queue: queue, Op: op, Err: errNoFairness}
	}
	if err := fb.QueueTenantPause(ctx, queue, tenant, paused); err != nil {
		return &QueueError{Queue: queue, Op: op, Err: err}
	}
	return nil
}
