package brokertest_test

import (
	"context"
	"time"

	"github.com/aibos/worker/broker"
)

// memLeader is one named lease of a memBroker.
type memLeader struct {
	holder string
	until  time.Time
}

var _ broker.LeaderStore = (*memBroker)(nil)

func (b *memBroker) LeaderAcquire(ctx context.Context, p *broker.LeaderParams) (bool, error) {
	if err := p.Validate(true); err != nil {
		return false, err
	}
	if err := b.lock(); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	if b.leads == nil {
		b.leads = map[string]memLeader{}
	}
	now := time.Now()
	l, ok := b.leads[p.Name]
	switch {
	case !ok || !now.Before(l.until) || b.faults.leaderSteal:
		b.leads[p.Name] = memLeader{holder: p.Holder, until: now.Add(p.TTL)}
		return true, nil
	case l.holder == p.Holder:
		if !b.faults.leaderExtendNoop {
			b.leads[p.Name] = memLeader{holder: p.Holder, until: now.Add(p.TTL)}
		}
		return true, nil
	}
	return false, nil
}

func (b *memBroker) LeaderRelease(ctx context.Context, p *broker.LeaderParams) error {
	if err := p.Validate(false); err != nil {
		return err
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if l, ok := b.leads[p.Name]; ok && l.holder == p.Holder {
		delete(b.leads, p.Name)
	}
	return nil
}
