package redisbroker

import (
	"context"
	"fmt"

	"github.com/aibos/worker/broker"
)

// WorkflowRunMaintain removes finished runs past the retention rules, each
// one whole, in one script call; see broker.WorkflowStore. Runs finish into
// the zset <prefix>:{queue}:wfx:finished, scored by finish time, so each
// rule reads only the oldest Limit entries.
func (b *Broker) WorkflowRunMaintain(ctx context.Context, p *broker.WorkflowRunMaintainParams) (int, error) {
	if err := b.open("maintain workflow runs"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("redisbroker: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 1000
	}
	k := b.keys(p.Queue)
	base := b.prefix + ":{" + p.Queue + "}:"
	keys := []string{k.completed, k.dead, k.cancelled, k.expired, k.ttl, k.job, k.unique,
		base + "wf:", base + "wfx:", base + "wfk:", b.workflowFinishedKey(p.Queue)}
	n, err := scriptWorkflowMaintain.Run(ctx, b.client, keys, limit, millis(p.FinishedMaxAge), p.FinishedMaxCount).Int()
	if err != nil {
		return 0, fmt.Errorf("redisbroker: maintain workflow runs of %q: %w", p.Queue, err)
	}
	return n, nil
}
