package redisbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

// JobFetch leases up to p.Limit jobs in one script call; see broker.Broker.
func (b *Broker) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	if err := b.open("fetch jobs"); err != nil {
		return nil, err
	}
	if err := b.formatReady(ctx, "fetch jobs"); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("redisbroker: fetch jobs: %w: params are nil", broker.ErrInvalidJob)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: fetch jobs: %w", err)
	}
	k := b.keys(p.Queue)
	keys := []string{k.scheduled, k.pending, k.active, k.expired, k.paused, k.seq, k.token, k.ttl, k.job, k.unique}
	reply, err := b.runMarked(ctx, p.Queue, scriptFetch, keys, []any{p.Limit, millis(p.LeaseDuration), p.WorkerID}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: fetch from %q: %w", p.Queue, err)
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: fetch from %q: %w", p.Queue, err)
	}
	switch st {
	case "paused":
		return nil, fmt.Errorf("redisbroker: fetch from %q: %w", p.Queue, broker.ErrQueuePaused)
	case "ok":
	default:
		return nil, fmt.Errorf("redisbroker: fetch from %q: unexpected status %q", p.Queue, st)
	}
	if len(arr) < 3 {
		return nil, fmt.Errorf("redisbroker: fetch from %q: reply of %d values has no lease times", p.Queue, len(arr))
	}
	if (len(arr)-3)%3 != 0 {
		return nil, fmt.Errorf("redisbroker: fetch from %q: reply of %d values after the lease times, want three per job", p.Queue, len(arr)-3)
	}
	started, until := fromMillis(num(arr, 1)), fromMillis(num(arr, 2))
	jobs := make([]*broker.Job, 0, (len(arr)-3)/3)
	for i := 3; i < len(arr); i += 3 {
		j, err := decodeFetched(p.Queue, arr[i:i+3], started, until, p.WorkerID)
		if err != nil {
			return nil, fmt.Errorf("redisbroker: fetch from %q: %w", p.Queue, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// decodeFetched decodes the three values of a job in a fetch reply: as any
// job, or, for a job whose state hash the fetch created, id, body and lease
// token with the lease fields the script wrote (lua/fetch.lua).
func decodeFetched(queue string, arr []any, started, until time.Time, worker string) (*broker.Job, error) {
	token, fresh := arr[2].(int64)
	if !fresh {
		return decodeJobReply(queue, arr)
	}
	id, _ := arr[0].(string)
	body, _ := arr[1].(string)
	j, err := decodeJobParts(queue, id, body, nil)
	if err != nil {
		return nil, err
	}
	j.State, j.Attempt, j.LeaseToken = broker.StateActive, 1, token
	j.StartedAt, j.LeaseUntil, j.WorkerID = started, until, worker
	return j, nil
}

// JobComplete acknowledges jobs: one script call per queue, all in one
// pipeline.
func (b *Broker) JobComplete(ctx context.Context, ps []*broker.JobCompleteParams) ([]error, error) {
	if err := b.open("complete jobs"); err != nil {
		return nil, err
	}
	leases := make([]*broker.JobLeaseParams, len(ps))
	for i, p := range ps {
		if p == nil {
			return nil, fmt.Errorf("redisbroker: complete jobs: %w: params at index %d are nil", broker.ErrInvalidJob, i)
		}
		if len(p.Result) > 0 && !json.Valid(p.Result) {
			return nil, fmt.Errorf("redisbroker: complete jobs: %w: result of job %s is not valid JSON", broker.ErrInvalidJob, p.ID)
		}
		if p.CompletedMaxCount < 0 {
			return nil, fmt.Errorf("redisbroker: complete jobs: %w: completed max count %d of job %s is negative", broker.ErrInvalidJob, p.CompletedMaxCount, p.ID)
		}
		leases[i] = &p.JobLeaseParams
	}
	errs, err := b.leaseBatch(ctx, scriptComplete, leases,
		func(k queueKeys) []string { return []string{k.active, k.completed, k.job, k.unique, k.ttl} },
		func(idx []int) []any {
			keep := 0 // the smallest count rule given for the queue
			for _, i := range idx {
				if n := ps[i].CompletedMaxCount; n > 0 && (keep == 0 || n < keep) {
					keep = n
				}
			}
			stride := 2 // id and token: no job has a result or asks to go
			for _, i := range idx {
				if len(ps[i].Result) > 0 || ps[i].Delete {
					stride = 4
				}
			}
			args := make([]any, 0, 3+stride*len(idx))
			args = append(args, len(idx), keep, stride)
			for _, i := range idx {
				// Pointers into ps, which outlive the call: boxing the
				// values themselves was two allocations per job.
				args = append(args, &ps[i].ID, &ps[i].Token)
				if stride == 4 {
					args = append(args, []byte(ps[i].Result), boolArg(ps[i].Delete))
				}
			}
			return args
		})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: complete %d jobs: %w", len(ps), err)
	}
	return errs, nil
}

// JobLeaseExtend extends leases to now + d: one script call per queue, all
// in one pipeline.
func (b *Broker) JobLeaseExtend(ctx context.Context, ps []*broker.JobLeaseParams, d time.Duration) ([]error, error) {
	if err := b.open("extend leases"); err != nil {
		return nil, err
	}
	if d <= 0 {
		return nil, fmt.Errorf("redisbroker: extend leases: %w: duration %v must be positive", broker.ErrInvalidJob, d)
	}
	for i, p := range ps {
		if p == nil {
			return nil, fmt.Errorf("redisbroker: extend leases: %w: params at index %d are nil", broker.ErrInvalidJob, i)
		}
	}
	errs, err := b.leaseBatch(ctx, scriptExtend, ps,
		func(k queueKeys) []string { return []string{k.active, k.job} },
		func(idx []int) []any {
			args := make([]any, 0, 2+2*len(idx))
			args = append(args, millis(d), len(idx))
			for _, i := range idx {
				args = append(args, ps[i].ID, ps[i].Token)
			}
			return args
		})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: extend %d leases: %w", len(ps), err)
	}
	return errs, nil
}

// leaseBatch groups ps by queue, runs script once per queue in one
// pipeline, and maps each job's code to its error. A job in a queue with an
// invalid name cannot exist: ErrNotFound.
func (b *Broker) leaseBatch(ctx context.Context, script *luaScript, ps []*broker.JobLeaseParams,
	keysOf func(queueKeys) []string, argsOf func(idx []int) []any) ([]error, error) {
	errs := make([]error, len(ps))
	var queues []string
	groups := map[string][]int{}
	for i, p := range ps {
		if err := broker.ValidateQueueName(p.Queue); err != nil {
			errs[i] = fmt.Errorf("job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
			continue
		}
		if _, ok := groups[p.Queue]; !ok {
			queues = append(queues, p.Queue)
		}
		groups[p.Queue] = append(groups[p.Queue], i)
	}
	if len(queues) == 0 {
		return errs, nil
	}
	calls := make([]scriptCall, len(queues))
	for qi, q := range queues {
		calls[qi] = scriptCall{keys: keysOf(b.keys(q)), args: argsOf(groups[q])}
	}
	cmds, err := b.runPipelined(ctx, script, calls)
	if err != nil {
		return nil, err
	}
	for qi, q := range queues {
		codes, err := cmds[qi].Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("queue %q: %w", q, err)
		}
		idx := groups[q]
		if len(codes) != len(idx) {
			return nil, fmt.Errorf("queue %q: %d codes for %d jobs", q, len(codes), len(idx))
		}
		for n, i := range idx {
			if e := leaseErr(codes[n]); e != nil {
				errs[i] = fmt.Errorf("job %s in %q: %w", ps[i].ID, q, e)
			}
		}
	}
	return errs, nil
}

// scriptCall is one invocation of a script in a pipeline.
type scriptCall struct {
	script *luaScript // nil: the pipeline's script
	keys   []string
	args   []any
}

func (c scriptCall) scriptOr(s *luaScript) *luaScript {
	if c.script != nil {
		return c.script
	}
	return s
}

// runPipelined runs calls of one script in a single round trip. A call the
// server answers that its function or script is missing did not run; it
// is retried alone with run, which loads the library (or the script).
func (b *Broker) runPipelined(ctx context.Context, script *luaScript, calls []scriptCall) ([]*redis.Cmd, error) {
	return b.runPipelinedVia(ctx, b.client, script, calls)
}

// runPipelinedVia is runPipelined through via (see durably).
func (b *Broker) runPipelinedVia(ctx context.Context, via scriptRunner, script *luaScript, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(calls))
	eval := b.evalOnly.Load()
	_, _ = via.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, c := range calls {
			s := c.scriptOr(script)
			if eval {
				cmds[i] = s.eval.EvalSha(ctx, pipe, c.keys, c.args...)
			} else {
				cmds[i] = pipe.FCall(ctx, s.fn, c.keys, c.args...)
			}
		}
		return nil
	})
	for i, c := range calls {
		err := cmds[i].Err()
		if redis.HasErrorPrefix(err, "NOSCRIPT") || isFunctionNotFound(err) || noFunctions(err) {
			cmds[i] = b.run(ctx, via, c.scriptOr(script), c.keys, c.args...)
			err = cmds[i].Err()
		}
		if err != nil {
			return nil, err
		}
	}
	return cmds, nil
}

// JobFail records a failed attempt; see broker.Broker.
func (b *Broker) JobFail(ctx context.Context, p *broker.JobFailParams) (broker.State, error) {
	if err := b.open("fail job"); err != nil {
		return "", err
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("redisbroker: fail job: %w", err)
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return "", fmt.Errorf("redisbroker: fail job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	}
	headers, err := failHeaders(p)
	if err != nil {
		return "", fmt.Errorf("redisbroker: fail job %s in %q: %w", p.ID, p.Queue, err)
	}
	k := b.keys(p.Queue)
	discard := "0"
	if p.Discard {
		discard = "1"
	}
	reply, err := b.run(ctx, b.client, scriptFail, []string{k.active, k.scheduled, k.dead, k.job, k.unique, wakeChannel(b.prefix, p.Queue)},
		p.ID, p.Token, p.Error, millis(p.RetryDelay), discard, max(p.MaxAttempts, 0), headers).Slice()
	if err != nil {
		return "", fmt.Errorf("redisbroker: fail job %s in %q: %w", p.ID, p.Queue, err)
	}
	if e := leaseErr(num(reply, 0)); e != nil {
		return "", fmt.Errorf("redisbroker: fail job %s in %q: %w", p.ID, p.Queue, e)
	}
	return broker.State(str(reply, 1)), nil
}

// failHeaders encodes the headers a failure merges into its job, as the
// scripts take them: a JSON object, or "" for none.
func failHeaders(p *broker.JobFailParams) (string, error) {
	if len(p.Headers) == 0 {
		return "", nil
	}
	h, err := json.Marshal(p.Headers)
	if err != nil {
		return "", fmt.Errorf("encode headers of failed job %s: %w", p.ID, err)
	}
	return string(h), nil
}

// JobRelease hands an active job back without counting the attempt.
func (b *Broker) JobRelease(ctx context.Context, p *broker.JobLeaseParams) error {
	if err := b.open("release job"); err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("redisbroker: release job: %w: params are nil", broker.ErrInvalidJob)
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("redisbroker: release job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	}
	k := b.keys(p.Queue)
	code, err := b.run(ctx, b.client, scriptRelease, []string{k.active, k.pending, k.seq, k.job, wakeChannel(b.prefix, p.Queue)}, p.ID, p.Token).Int64()
	if err != nil {
		return fmt.Errorf("redisbroker: release job %s in %q: %w", p.ID, p.Queue, err)
	}
	if e := leaseErr(code); e != nil {
		return fmt.Errorf("redisbroker: release job %s in %q: %w", p.ID, p.Queue, e)
	}
	return nil
}

// JobProgress stores progress for an active job.
func (b *Broker) JobProgress(ctx context.Context, p *broker.JobLeaseParams, progress json.RawMessage) error {
	if err := b.open("report progress"); err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("redisbroker: report progress: %w: params are nil", broker.ErrInvalidJob)
	}
	if len(progress) > 0 && !json.Valid(progress) {
		return fmt.Errorf("redisbroker: report progress of job %s: %w: progress is not valid JSON", p.ID, broker.ErrInvalidJob)
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("redisbroker: report progress of job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	}
	code, err := b.run(ctx, b.client, scriptProgress, []string{b.keys(p.Queue).job}, p.ID, p.Token, string(progress)).Int64()
	if err != nil {
		return fmt.Errorf("redisbroker: report progress of job %s in %q: %w", p.ID, p.Queue, err)
	}
	if e := leaseErr(code); e != nil {
		return fmt.Errorf("redisbroker: report progress of job %s in %q: %w", p.ID, p.Queue, e)
	}
	return nil
}
