package brokertest_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aibos/worker/broker"
)

// JobRewrite is broker.JobRewriter: each named value is compared with its
// Old and, if all match, replaced; a fault writes without comparing, or
// keeps what it wrote before the value that did not match.
func (b *memBroker) JobRewrite(ctx context.Context, p *broker.JobRewriteParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	j, err := b.find(p.Queue, p.ID)
	if err != nil {
		return err
	}
	type slot struct {
		cur *string
		v   *broker.ValueRewrite
	}
	data, result, progress := string(j.Data), string(j.Result), string(j.Progress)
	slots := []slot{{&data, p.Data}, {&result, p.Result}, {&progress, p.Progress}, {&j.LastError, p.LastError}}
	for _, i := range p.AttemptPositions() {
		if i >= len(j.attempts) {
			return fmt.Errorf("rewrite job %s: attempt %d is not in its history: %w", p.ID, i, broker.ErrConflict)
		}
		slots = append(slots, slot{&j.attempts[i].Error, p.Attempts[i]})
	}
	conflict := false
	for _, s := range slots {
		conflict = conflict || s.v != nil && *s.cur != s.v.Old
	}
	if conflict && !b.faults.rewriteIgnoresOld && !b.faults.rewritePartial {
		return fmt.Errorf("rewrite job %s: %w", p.ID, broker.ErrConflict)
	}
	for _, s := range slots {
		if s.v == nil {
			continue
		}
		if b.faults.rewritePartial && *s.cur != s.v.Old {
			break
		}
		*s.cur = s.v.New
	}
	if p.Data != nil {
		j.Data = json.RawMessage(data)
	}
	if p.Result != nil {
		j.Result = json.RawMessage(result)
	}
	if p.Progress != nil {
		j.Progress = json.RawMessage(progress)
	}
	if conflict && b.faults.rewritePartial {
		return fmt.Errorf("rewrite job %s: %w", p.ID, broker.ErrConflict)
	}
	return nil
}
