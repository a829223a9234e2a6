package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

// JobGet returns one job with its attempt history, read by one script call
// (lua/get.lua), which also checks the tenant scope.
func (b *Broker) JobGet(ctx context.Context, p *broker.JobGetParams) (*broker.Job, error) {
	if err := b.open("get job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	queue, id := p.Queue, p.ID
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: get job %s in %q: %w", id, queue, broker.ErrNotFound)
	}
	reply, err := b.run(ctx, b.client, scriptGet, []string{b.keys(queue).job}, id, p.TenantID).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisbroker: get job %s in %q: %w", id, queue, broker.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get job %s in %q: %w", id, queue, err)
	}
	j, err := decodeJobWithHistory(queue, reply)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get job %s in %q: %w", id, queue, err)
	}
	return j, nil
}

// decodeJobWithHistory decodes get.lua's reply: a job and its attempt
// history.
func decodeJobWithHistory(queue string, reply any) (*broker.Job, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 4 {
		return nil, fmt.Errorf("decode job: reply is %T of length %d, want {id, body, fields, history}", reply, lenOf(reply))
	}
	j, err := decodeJobReply(queue, arr[:3])
	if err != nil {
		return nil, err
	}
	hist, _ := arr[3].([]any)
	for _, h := range hist {
		s, _ := h.(string)
		a, err := broker.DecodeAttemptRecord([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", j.ID, err)
		}
		j.Attempts = append(j.Attempts, a)
	}
	return j, nil
}

// JobList lists one page of a queue's jobs in one state; see broker.Broker.
func (b *Broker) JobList(ctx context.Context, p *broker.JobListParams) (*broker.JobListResult, error) {
	if err := b.open("list jobs"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: list jobs: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	k := b.keys(p.Queue)
	// A tenant's listing reads its index zset of that state (lib.lua), which
	// holds only its jobs, in the state's order: no tenant filter to apply.
	zset := k.stateZset(p.State)
	if p.TenantID != "" {
		zset = k.tenantIndex(p.State, p.TenantID)
	}
	rev := "0"
	if p.State.Finished() {
		rev = "1"
	}
	keys := []string{zset, k.job}
	score, id, from, err := listCursorArgs(p.After)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	if p.Type == "" {
		reply, err := b.run(ctx, b.client, scriptList, keys, p.Offset, limit, rev, "", "", 0, 0, 0, score, id, from).Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbroker: list %s jobs of %q: %w", p.State, p.Queue, err)
		}
		jobs, err := decodeJobs(p.Queue, reply, 2)
		if err != nil {
			return nil, fmt.Errorf("redisbroker: list %s jobs of %q: %w", p.State, p.Queue, err)
		}
		return listResult(p, jobs, num(reply, 0), str(reply, 1)), nil
	}
	// A listing filtered by type scans the state's (or tenant's) set in slices of listScanBudget
	// entries, one script call each, so a large queue never blocks Redis for
	// long. The slices are not one snapshot: jobs moving meanwhile may be
	// missed or seen twice, as with any paginated listing.
	var jobs []*broker.Job
	pos, matched, next, last := int64(0), int64(0), int64(-1), ""
	for {
		reply, err := b.run(ctx, b.client, scriptList, keys, p.Offset, limit, rev, "", p.Type,
			listScanBudget, pos, matched, score, id, from).Slice()
		if err != nil {
			return nil, fmt.Errorf("redisbroker: list %s jobs of %q: %w", p.State, p.Queue, err)
		}
		page, err := decodeJobs(p.Queue, reply, 4)
		if err != nil {
			return nil, fmt.Errorf("redisbroker: list %s jobs of %q: %w", p.State, p.Queue, err)
		}
		jobs = append(jobs, page...)
		if len(page) > 0 {
			last = str(reply, 3)
		}
		next = num(reply, 0)
		if pos = num(reply, 1); pos < 0 {
			return listResult(p, jobs, next, last), nil
		}
		matched, from = num(reply, 2), "0" // later slices go on from pos
	}
}

// listCursorArgs reads a cursor (JobListParams.After) into list.lua's
// ARGV[9..11]: a score and an id, and "1" when there is one.
func listCursorArgs(after string) (score, id, from string, err error) {
	if after == "" {
		return "", "", "0", nil
	}
	score, id, ok := strings.Cut(after, " ")
	if _, err := strconv.ParseFloat(score, 64); err != nil || !ok || id == "" {
		return "", "", "", broker.BadCursorError(after)
	}
	return score, id, "1", nil
}

// listResult is the result of a page of jobs whose last has the given
// score in the listed zset; next is list.lua's next offset.
func listResult(p *broker.JobListParams, jobs []*broker.Job, next int64, score string) *broker.JobListResult {
	res := &broker.JobListResult{Jobs: jobs, NextOffset: int(next)}
	if next >= 0 && len(jobs) > 0 {
		res.Cursor = score + " " + jobs[len(jobs)-1].ID
	}
	return res
}

// listScanBudget bounds the entries one filtered-listing script call
// examines (about a millisecond of Redis time).
const listScanBudget = 2000

// JobCancel cancels a scheduled, pending or active job; see broker.Broker.
func (b *Broker) JobCancel(ctx context.Context, p *broker.JobCancelParams) (*broker.Job, error) {
	if err := b.open("cancel job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	queue, id := p.Queue, p.ID
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: cancel job %s in %q: %w", id, queue, broker.ErrNotFound)
	}
	k := b.keys(queue)
	j, err := b.jobScript(ctx, queue, id, b.run(ctx, b.client, scriptCancel,
		[]string{k.scheduled, k.pending, k.active, k.cancelled, k.job, k.unique}, id, p.TenantID).Result)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: cancel job %s in %q: %w", id, queue, err)
	}
	return j, nil
}

// JobRetry moves a dead, cancelled or expired job back to pending.
func (b *Broker) JobRetry(ctx context.Context, p *broker.JobRetryParams) (*broker.Job, error) {
	if err := b.open("retry job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	queue, id := p.Queue, p.ID
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("redisbroker: retry job %s in %q: %w", id, queue, broker.ErrNotFound)
	}
	k := b.keys(queue)
	j, err := b.jobScript(ctx, queue, id, b.run(ctx, b.client, scriptRetry,
		[]string{k.dead, k.cancelled, k.expired, k.pending, k.seq, k.ttl, k.job, k.unique, wakeChannel(b.prefix, queue)}, id, p.TenantID).Result)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: retry job %s in %q: %w", id, queue, err)
	}
	return j, nil
}

// jobScript decodes the reply of a script that changes one job's state:
// {'ok', job} | {'notfound'} | {'wrongstate', state} | {'dup', holder,
// unique slot}.
func (b *Broker) jobScript(_ context.Context, queue, id string, result func() (any, error)) (*broker.Job, error) {
	reply, err := result()
	if err != nil {
		return nil, err
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, err
	}
	switch st {
	case "ok":
		if len(arr) < 2 {
			return nil, fmt.Errorf("reply has no job")
		}
		return decodeJobReply(queue, arr[1])
	case "notfound":
		return nil, broker.ErrNotFound
	case "wrongstate":
		return nil, fmt.Errorf("%w: job is %s", broker.ErrWrongState, str(arr, 1))
	case "dup":
		return nil, &broker.DuplicateError{Queue: queue, ExistingID: str(arr, 1), UniqueKey: broker.UniqueKeyOfSlot(str(arr, 2))}
	}
	return nil, fmt.Errorf("unexpected status %q", st)
}

// JobDelete removes a job that is not active, with its index entries and
// unique key.
func (b *Broker) JobDelete(ctx context.Context, p *broker.JobDeleteParams) error {
	if err := b.open("delete job"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("redisbroker: %w", err)
	}
	queue, id := p.Queue, p.ID
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("redisbroker: delete job %s in %q: %w", id, queue, broker.ErrNotFound)
	}
	k := b.keys(queue)
	keys := []string{k.scheduled, k.pending, k.active, k.completed, k.dead, k.cancelled, k.expired, k.ttl, k.job, k.unique}
	code, err := b.run(ctx, b.client, scriptDelete, keys, id, p.TenantID).Int64()
	if err != nil {
		return fmt.Errorf("redisbroker: delete job %s in %q: %w", id, queue, err)
	}
	switch code {
	case 0:
		return fmt.Errorf("redisbroker: delete job %s in %q: %w", id, queue, broker.ErrNotFound)
	case -1:
		return fmt.Errorf("redisbroker: delete job %s in %q: %w: job is active", id, queue, broker.ErrWrongState)
	}
	return nil
}
