package redisbroker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aibos/worker/broker"
)

// JobRewrite rewrites a job's stored values, each only if it still holds
// its Old, in one script (lua/rewrite.lua). See broker.JobRewriter.
func (b *Broker) JobRewrite(ctx context.Context, p *broker.JobRewriteParams) error {
	if err := b.open("rewrite job"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redisbroker: rewrite job: %w", err)
	}
	args := []any{p.ID}
	for _, v := range []*broker.ValueRewrite{p.Data, p.Result, p.Progress, p.LastError} {
		if v == nil {
			args = append(args, "", "")
			continue
		}
		args = append(args, v.Old, v.New)
	}
	for _, i := range p.AttemptPositions() {
		args = append(args, strconv.Itoa(i), p.Attempts[i].Old, p.Attempts[i].New)
	}
	code, err := b.run(ctx, b.client, scriptRewrite, []string{b.keys(p.Queue).job}, args...).Int64()
	if err != nil {
		return fmt.Errorf("redisbroker: rewrite job %s in %q: %w", p.ID, p.Queue, err)
	}
	switch code {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("redisbroker: rewrite job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	}
	return fmt.Errorf("redisbroker: rewrite job %s in %q: a value changed since it was read: %w", p.ID, p.Queue, broker.ErrConflict)
}
