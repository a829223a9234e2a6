package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
)

// insertFields is the number of ARGV entries per job of lua/insert.lua.
const insertFields = 5

// JobInsert stores one job; see broker.Broker.
func (b *Broker) JobInsert(ctx context.Context, p *broker.JobInsertParams) (*broker.Job, error) {
	if err := b.open("insert job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: insert job: %w", err)
	}
	jobs, err := b.insert(ctx, []*broker.JobInsertParams{p})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: insert job %s into %q: %w", p.ID, p.Queue, err)
	}
	return jobs[0], nil
}

// JobInsertMany stores jobs of one queue atomically, in one script call.
func (b *Broker) JobInsertMany(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if err := b.open("insert jobs"); err != nil {
		return nil, err
	}
	if err := broker.ValidateBatch(ps); err != nil {
		return nil, fmt.Errorf("redisbroker: insert jobs: %w", err)
	}
	jobs, err := b.insert(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: insert %d jobs into %q: %w", len(ps), ps[0].Queue, err)
	}
	return jobs, nil
}

// insert runs lua/insert.lua on validated params of one queue.
func (b *Broker) insert(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	queue := ps[0].Queue
	args := make([]any, 0, 1+len(ps)*insertFields)
	args = append(args, len(ps))
	var buf []byte
	for _, p := range ps {
		var headers []byte
		if len(p.Headers) > 0 {
			h, err := json.Marshal(p.Headers)
			if err != nil {
				return nil, fmt.Errorf("encode headers of job %s: %w", p.ID, err)
			}
			headers = h
		}
		buf = appendBody(buf[:0], p, headers)
		opts := ""
		if p.UniqueKey != "" || p.TTL > 0 || p.Delay > 0 || !p.RunAt.IsZero() {
			runAt := ""
			if !p.RunAt.IsZero() {
				// Rounded up to the millisecond: never due before RunAt.
				runAt = strconv.FormatInt((p.RunAt.UnixNano()+999_999)/1_000_000, 10)
			}
			opts = runAt + "|" + strconv.FormatInt(millis(p.Delay), 10) + "|" +
				strconv.FormatInt(millis(p.TTL), 10) + "|" + p.UniqueKey
		}
		args = append(args, p.ID, string(buf), p.Priority, opts, p.MaxQueueLength)
	}
	k := b.keys(queue)
	reply, err := scriptInsert.Run(ctx, b.client, []string{k.scheduled, k.pending, k.seq, k.ttl, k.job, k.unique, wakeChannel(b.prefix, queue)}, args...).Result()
	if err != nil {
		return nil, err
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, err
	}
	switch st {
	case "dup":
		dup := &broker.DuplicateError{Queue: queue, ExistingID: str(arr, 2), UniqueKey: str(arr, 3)}
		if i := int(num(arr, 1)) - 1; len(ps) > 1 && i >= 0 && i < len(ps) {
			return nil, fmt.Errorf("job %s at index %d: %w", ps[i].ID, i, dup)
		}
		return nil, dup
	case "full":
		return nil, fmt.Errorf("%w: it holds %d scheduled and pending jobs", broker.ErrQueueFull, num(arr, 2))
	case "ok":
	default:
		return nil, fmt.Errorf("unexpected insert status %q", st)
	}
	if (len(arr)-2)%3 != 0 {
		return nil, fmt.Errorf("insert reply has %d values, want 2 + 3 per scheduled job", len(arr))
	}
	// The jobs are stored: a failure to name the queue must not report the
	// insert as failed. The next insert of this broker tries again.
	_ = b.registerQueue(ctx, queue)
	created := fromMillis(num(arr, 1))
	jobs := make([]*broker.Job, len(ps))
	for i, p := range ps {
		j := &broker.Job{
			ID: p.ID, Queue: p.Queue, Type: p.Type, Priority: p.Priority, MaxAttempts: p.MaxAttempts,
			TenantID: p.TenantID, CompanyID: p.CompanyID, UniqueKey: p.UniqueKey, Timeout: p.Timeout,
			State: broker.StatePending, CreatedAt: created, RunAt: created,
		}
		if len(p.Data) > 0 {
			j.Data = append(json.RawMessage(nil), p.Data...)
		}
		if len(p.Headers) > 0 {
			j.Headers = make(map[string]string, len(p.Headers))
			for hk, hv := range p.Headers {
				j.Headers[hk] = hv
			}
		}
		jobs[i] = j
	}
	for r := 2; r+2 < len(arr); r += 3 {
		i := int(num(arr, r)) - 1
		if i < 0 || i >= len(jobs) {
			return nil, fmt.Errorf("insert reply names job %d of %d", i+1, len(jobs))
		}
		jobs[i].State, jobs[i].RunAt = broker.State(str(arr, r+1)), fromMillis(num(arr, r+2))
	}
	for i, p := range ps {
		if p.TTL > 0 {
			jobs[i].ExpiresAt = jobs[i].RunAt.Add(time.Duration(millis(p.TTL)) * time.Millisecond)
		}
	}
	return jobs, nil
}
