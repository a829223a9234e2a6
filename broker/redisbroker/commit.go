package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aibos/worker/broker"
)

var _ broker.Committer = (*Broker)(nil)

var (
	scriptCommit  = loadScript("commit.lua")
	scriptDocList = loadScript("doc_list.lua")
)

// docKey names a document's hash; lua/commit.lua builds the same name from
// its KEYS[12].
func (b *Broker) docKey(scope, kind, key string) string {
	return b.prefix + ":{" + scope + "}:d:" + kind + ":" + key
}

// Commit applies p in one call of lua/commit.lua; see broker.Committer.
func (b *Broker) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if err := b.open("commit"); err != nil {
		return nil, err
	}
	if err := b.formatReady(ctx, "commit"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	args, err := commitPlan(p)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: commit to %q: %w", p.Scope, err)
	}
	k := b.keys(p.Scope)
	base := b.prefix + ":{" + p.Scope + "}:"
	keys := []string{k.scheduled, k.pending, k.active, k.completed, k.dead, k.cancelled, k.expired, k.ttl, k.seq,
		k.job, k.unique, base + "d:", base + "x:", wakeChannel(b.prefix, p.Scope)}
	var reply any
	err = b.durably(ctx, p.Scope, func(via scriptRunner) (err error) {
		reply, err = b.run(ctx, via, scriptCommit, keys, args...).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redisbroker: commit to %q: %w", p.Scope, err)
	}
	res, err := commitReply(p, reply)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: commit to %q: %w", p.Scope, err)
	}
	if len(p.Insert) > 0 {
		_ = b.registerQueue(ctx, p.Scope) // as in insert: the jobs are stored whatever this says
	}
	return res, nil
}

// commitPlan encodes p as lua/commit.lua's ARGV: the plan, as JSON, then
// the bulky values it names by their ARGV index (completion results,
// document bodies, job data). Those go as they are: inside the plan each
// would be escaped as a JSON string by the broker and unescaped by Lua.
func commitPlan(p *broker.CommitParams) ([]any, error) {
	type obj = []any
	args := []any{nil}
	bulk := func(v []byte) int {
		args = append(args, v)
		return len(args)
	}
	plan := map[string]any{"nb": int64(0), "c": []obj{}, "f": []obj{}, "d": []obj{}, "i": []obj{}, "m": []obj{},
		"x": append([]string{}, p.Cancel...), "r": append([]string{}, p.Delete...), "a": append([]string{}, p.Absent...)}
	if !p.NotBefore.IsZero() {
		// Rounded up: never applied before NotBefore.
		plan["nb"] = (p.NotBefore.UnixNano() + 999_999) / 1_000_000
	}
	var c, f, d, ins, m []obj
	for _, x := range p.Reschedule {
		m = append(m, obj{x.ID, x.RunAt.UnixMilli()})
	}
	for _, x := range p.Complete {
		c = append(c, obj{x.ID, strconv.FormatInt(x.Token, 10), bulk(x.Result), b01(x.Delete)})
	}
	for _, x := range p.Fail {
		h, err := failHeaders(x)
		if err != nil {
			return nil, err
		}
		f = append(f, obj{x.ID, strconv.FormatInt(x.Token, 10), x.Error, millis(x.RetryDelay), b01(x.Discard), x.MaxAttempts, h})
	}
	for _, x := range p.Docs {
		index := []obj{}
		for _, e := range x.Index {
			index = append(index, obj{e.Name, e.Score})
		}
		d = append(d, obj{x.Kind, x.Key, x.Version, b01(x.Delete), bulk(x.Body), index})
	}
	for _, x := range p.Insert {
		j := x.Job
		headers := ""
		if len(j.Headers) > 0 {
			h, err := json.Marshal(j.Headers)
			if err != nil {
				return nil, fmt.Errorf("encode headers of job %s: %w", j.ID, err)
			}
			headers = string(h)
		}
		runAt := int64(0)
		if !j.RunAt.IsZero() {
			runAt = (j.RunAt.UnixNano() + 999_999) / 1_000_000
		}
		ins = append(ins, obj{j.ID, j.Type, bulk(j.Data), broker.PriorityOrDefault(j.Priority), j.MaxAttempts, j.TenantID, j.CompanyID, headers,
			broker.UniqueSlot(j.TenantID, j.UniqueKey), int64(j.Timeout), millis(j.TTL), j.MaxQueueLength, runAt, millis(j.Delay), b01(x.IfAbsent), b01(x.Optional),
			b01(j.DeleteOnComplete)})
	}
	for key, v := range map[string][]obj{"c": c, "f": f, "d": d, "i": ins, "m": m} {
		if v != nil {
			plan[key] = v
		}
	}
	out, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	args[0] = string(out)
	return args, nil
}

func b01(v bool) int {
	if v {
		return 1
	}
	return 0
}

// commitReply turns lua/commit.lua's reply into a result or the documented
// error.
func commitReply(p *broker.CommitParams, reply any) (*broker.CommitResult, error) {
	arr, st, err := status(reply)
	if err != nil {
		return nil, err
	}
	switch st {
	case "early":
		return nil, &broker.TooEarlyError{Now: fromMillis(num(arr, 1))}
	case "lease":
		i := int(num(arr, 2)) - 1
		var lp broker.JobLeaseParams
		if str(arr, 1) == "c" && i >= 0 && i < len(p.Complete) {
			lp = p.Complete[i].JobLeaseParams
		} else if i >= 0 && i < len(p.Fail) {
			lp = p.Fail[i].JobLeaseParams
		}
		return nil, fmt.Errorf("job %s, token %d: %w", lp.ID, lp.Token, leaseErr(num(arr, 3)))
	case "resched":
		if st := str(arr, 2); st != "" {
			return nil, fmt.Errorf("reschedule job %s: it is %s: %w", str(arr, 1), st, broker.ErrWrongState)
		}
		return nil, fmt.Errorf("reschedule job %s: %w", str(arr, 1), broker.ErrNotFound)
	case "taken":
		return nil, &broker.DuplicateError{Queue: p.Scope, ExistingID: str(arr, 1)}
	case "conflict":
		return nil, fmt.Errorf("%w: %s", broker.ErrConflict, str(arr, 1))
	case "dup", "full":
		i := int(num(arr, 1)) - 1
		if i < 0 || i >= len(p.Insert) {
			return nil, fmt.Errorf("commit reply names insert %d of %d", i+1, len(p.Insert))
		}
		return nil, fmt.Errorf("insert job %s: %w", p.Insert[i].Job.ID, rejection(p.Scope, st, str(arr, 2), str(arr, 3)))
	case "ok":
	default:
		return nil, fmt.Errorf("unexpected commit status %q", st)
	}
	if len(arr) != 5 {
		return nil, fmt.Errorf("commit reply has %d values, want 5", len(arr))
	}
	now := fromMillis(num(arr, 1))
	res := &broker.CommitResult{Now: now}
	failed, _ := arr[2].([]any)
	for i := range p.Fail {
		res.Failed = append(res.Failed, broker.State(str(failed, i)))
	}
	versions, _ := arr[3].([]any)
	for i := range p.Docs {
		res.Versions = append(res.Versions, num(versions, i))
	}
	ins, _ := arr[4].([]any)
	if len(ins) != 2*len(p.Insert) {
		return nil, fmt.Errorf("commit reply has %d insert outcomes, want %d", len(ins)/2, len(p.Insert))
	}
	res.Jobs = make([]*broker.Job, len(p.Insert))
	res.Skipped = make([]error, len(p.Insert))
	for i, in := range p.Insert {
		switch kind, detail := str(ins, 2*i), str(ins, 2*i+1); kind {
		case "pending", "scheduled":
			j := newJob(in.Job, now)
			j.State, j.RunAt = broker.State(kind), fromMillis(num(ins, 2*i+1))
			if in.Job.TTL > 0 {
				j.ExpiresAt = j.RunAt.Add(time.Duration(millis(in.Job.TTL)) * time.Millisecond)
			}
			res.Jobs[i] = j
		case "exists":
			res.Skipped[i] = &broker.DuplicateError{Queue: p.Scope, ExistingID: detail}
		case "unique":
			res.Skipped[i] = &broker.DuplicateError{Queue: p.Scope, ExistingID: detail, UniqueKey: in.Job.UniqueKey}
		case "full":
			res.Skipped[i] = rejection(p.Scope, "full", detail, "")
		default:
			return nil, fmt.Errorf("commit reply: unknown outcome %q for insert %d", kind, i+1)
		}
	}
	return res, nil
}

// DocGet reads one document; see broker.Committer.
func (b *Broker) DocGet(ctx context.Context, scope, kind, key string) (*broker.Doc, error) {
	if err := b.open("get document"); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(scope); err != nil {
		return nil, fmt.Errorf("redisbroker: get document: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := broker.ValidateDocKey(kind, key); err != nil {
		return nil, fmt.Errorf("redisbroker: get document: %w: %v", broker.ErrInvalidJob, err)
	}
	v, err := b.client.HMGet(ctx, b.docKey(scope, kind, key), "v", "b").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisbroker: get document %s %q in %q: %w", kind, key, scope, err)
	}
	ver, _ := v[0].(string)
	body, _ := v[1].(string)
	if ver == "" {
		return nil, fmt.Errorf("redisbroker: get document %s %q in %q: %w", kind, key, scope, broker.ErrDocNotFound)
	}
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: get document %s %q in %q: version %q: %w", kind, key, scope, ver, err)
	}
	return &broker.Doc{Kind: kind, Key: key, Version: n, Body: json.RawMessage(body)}, nil
}

// DocList reads one page of an index in one call of lua/doc_list.lua; see
// broker.Committer.
func (b *Broker) DocList(ctx context.Context, p *broker.DocListParams) (*broker.DocListResult, error) {
	if err := b.open("list documents"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: %w", err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	lo, hi := "-inf", "+inf"
	if p.Min != 0 {
		lo = strconv.FormatInt(p.Min, 10)
	}
	if p.Max != 0 {
		hi = strconv.FormatInt(p.Max, 10)
	}
	base := b.prefix + ":{" + p.Scope + "}:"
	reply, err := b.run(ctx, b.client, scriptDocList, []string{base + "x:" + p.Kind + ":" + p.Index, base + "d:" + p.Kind + ":"},
		lo, hi, b01(p.Desc), p.Offset, limit).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisbroker: list documents of index %q in %q: %w", p.Index, p.Scope, err)
	}
	res := &broker.DocListResult{Now: fromMillis(num(reply, 0)), Total: int(num(reply, 1))}
	for i := 2; i+2 < len(reply); i += 3 {
		res.Docs = append(res.Docs, &broker.Doc{Kind: p.Kind, Key: str(reply, i), Version: num(reply, i+1),
			Body: json.RawMessage(str(reply, i+2))})
	}
	return res, nil
}

// Now reads the Redis clock; see broker.Committer.
func (b *Broker) Now(ctx context.Context) (time.Time, error) {
	if err := b.open("read the clock"); err != nil {
		return time.Time{}, err
	}
	t, err := b.client.Time(ctx).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("redisbroker: read the clock: %w", err)
	}
	return t.UTC().Truncate(time.Millisecond), nil
}
