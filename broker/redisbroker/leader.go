package redisbroker

import (
	"context"
	"fmt"

	"github.com/aibos/worker/broker"
)

var (
	scriptLeaderAcquire = loadScript("leader_acquire.lua")
	scriptLeaderRelease = loadScript("leader_release.lua")
)

var _ broker.LeaderStore = (*Broker)(nil)

// LeaderAcquire takes or extends a named lease on Redis's clock; see
// broker.LeaderStore.
func (b *Broker) LeaderAcquire(ctx context.Context, p *broker.LeaderParams) (bool, error) {
	if err := b.open("acquire leader lease"); err != nil {
		return false, err
	}
	if err := p.Validate(true); err != nil {
		return false, fmt.Errorf("redisbroker: acquire leader lease: %w", err)
	}
	n, err := b.run(ctx, b.client, scriptLeaderAcquire, []string{leaderKey(b.prefix, p.Name)}, p.Holder, millis(p.TTL)).Int64()
	if err != nil {
		return false, fmt.Errorf("redisbroker: acquire leader lease %q: %w", p.Name, err)
	}
	return n == 1, nil
}

// LeaderRelease gives a named lease up if p.Holder holds it; see
// broker.LeaderStore.
func (b *Broker) LeaderRelease(ctx context.Context, p *broker.LeaderParams) error {
	if err := b.open("release leader lease"); err != nil {
		return err
	}
	if err := p.Validate(false); err != nil {
		return fmt.Errorf("redisbroker: release leader lease: %w", err)
	}
	if err := b.run(ctx, b.client, scriptLeaderRelease, []string{leaderKey(b.prefix, p.Name)}, p.Holder).Err(); err != nil {
		return fmt.Errorf("redisbroker: release leader lease %q: %w", p.Name, err)
	}
	return nil
}
