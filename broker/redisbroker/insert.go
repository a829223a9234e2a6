package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aibos/worker/broker"
)

// insertFields is the number of ARGV entries per job of lua/insert.lua.
const insertFields = 3

// bodyOverhead is room for the numbers a body starts with (appendBody).
const bodyOverhead = 48

// maxCombined bounds the jobs of one combined insert script call.
const maxCombined = 256

// JobInsert stores one job; see broker.Broker. Concurrent calls on one
// queue are combined into one script call in 'each' mode while one is in
// flight (package combine); each job is checked and stored on its own all
// the same, with its own outcome.
func (b *Broker) JobInsert(ctx context.Context, p *broker.JobInsertParams) (*broker.Job, error) {
	if err := b.open("insert job"); err != nil {
		return nil, err
	}
	if err := b.formatReady(ctx, "insert job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("redisbroker: insert job: %w", err)
	}
	job, err := b.inserts.Do(ctx, p.Queue, p)
	if err != nil {
		// No job id: it may be a generated one that was never stored.
		return nil, fmt.Errorf("redisbroker: insert job into %q: %w", p.Queue, err)
	}
	return job, nil
}

// JobInsertMany stores jobs of one queue atomically, in one script call.
func (b *Broker) JobInsertMany(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if err := b.open("insert jobs"); err != nil {
		return nil, err
	}
	if err := b.formatReady(ctx, "insert jobs"); err != nil {
		return nil, err
	}
	if err := broker.ValidateBatch(ps); err != nil {
		return nil, fmt.Errorf("redisbroker: insert jobs: %w", err)
	}
	jobs, _, err := b.insert(ctx, ps, false)
	if err != nil {
		return nil, fmt.Errorf("redisbroker: insert %d jobs into %q: %w", len(ps), ps[0].Queue, err)
	}
	return jobs, nil
}

// insert runs lua/insert.lua on validated params of one queue. All or none
// (each false): err is the first rejection. Each on its own: errs[i] is
// job i's rejection (its jobs[i] is nil) and err a failure of the call.
func (b *Broker) insert(ctx context.Context, ps []*broker.JobInsertParams, each bool) (jobs []*broker.Job, errs []error, err error) {
	queue := ps[0].Queue
	mode := "all"
	if each {
		mode = "each"
	}
	// Jobs with options (or another max queue length than the first job's)
	// are listed before the n triples; see lua/insert.lua.
	maxlen0 := ps[0].MaxQueueLength
	var withOpts []any
	for i, p := range ps {
		if p.TenantID != "" && mode[len(mode)-1] != 't' {
			mode += "+t" // the script reads tenants from the bodies
		}
		if p.UniqueKey == "" && p.TTL == 0 && p.Delay == 0 && p.RunAt.IsZero() && p.MaxQueueLength == maxlen0 && !p.DeleteOnComplete {
			continue
		}
		runAt := ""
		if !p.RunAt.IsZero() {
			// Rounded up to the millisecond: never due before RunAt.
			runAt = strconv.FormatInt((p.RunAt.UnixNano()+999_999)/1_000_000, 10)
		}
		// The script holds the key under its tenant's slot, so that tenants
		// never contend for a key.
		withOpts = append(withOpts, i+1, runAt+"|"+strconv.FormatInt(millis(p.Delay), 10)+"|"+
			strconv.FormatInt(millis(p.TTL), 10)+"|"+strconv.Itoa(p.MaxQueueLength)+"|"+boolArg(p.DeleteOnComplete)+"|"+
			broker.UniqueSlot(p.TenantID, p.UniqueKey))
	}
	args := make([]any, 0, 4+len(withOpts)+len(ps)*insertFields)
	args = append(args, len(ps), mode, maxlen0, len(withOpts)/2)
	args = append(args, withOpts...)
	// The bodies share one allocation.
	size := 0
	for _, p := range ps {
		size += bodyOverhead + len(p.Type) + len(p.TenantID) + len(p.CompanyID) + len(p.Data)
	}
	buf := make([]byte, 0, size)
	for _, p := range ps {
		var headers []byte
		if len(p.Headers) > 0 {
			h, err := json.Marshal(p.Headers)
			if err != nil {
				return nil, nil, fmt.Errorf("encode headers of job %s: %w", p.ID, err)
			}
			headers = h
		}
		start := len(buf)
		buf = appendBody(buf, p, headers)
		args = append(args, p.ID, buf[start:len(buf):len(buf)], broker.PriorityOrDefault(p.Priority))
	}
	k := b.keys(queue)
	b.insertCalls.Add(1)
	var reply any
	err = b.durably(ctx, queue, func(via scriptRunner) (err error) {
		reply, err = b.runMarkedVia(ctx, via, queue, scriptInsert, []string{k.scheduled, k.pending, k.seq, k.ttl, k.job, k.unique, wakeChannel(b.prefix, queue)}, args).Result()
		return err
	})
	if errors.Is(err, ErrNotReplicated) {
		_ = b.registerQueue(ctx, queue) // stored on the master: listed, as below
	}
	if err != nil {
		return nil, nil, err
	}
	arr, st, err := status(reply)
	if err != nil {
		return nil, nil, err
	}
	if st != "ok" {
		if each {
			return nil, nil, fmt.Errorf("unexpected insert status %q", st)
		}
		i := int(num(arr, 1)) - 1
		rej := rejection(queue, st, str(arr, 2), str(arr, 3))
		if len(ps) > 1 && i >= 0 && i < len(ps) {
			return nil, nil, fmt.Errorf("job at index %d: %w", i, rej)
		}
		return nil, nil, rej
	}
	if (len(arr)-2)%4 != 0 {
		return nil, nil, fmt.Errorf("insert reply has %d values, want 2 + 4 per listed job", len(arr))
	}
	created := fromMillis(num(arr, 1))
	jobs = make([]*broker.Job, len(ps))
	if each {
		errs = make([]error, len(ps))
	}
	stored := len(ps)
	for r := 2; r+3 < len(arr); r += 4 {
		i := int(num(arr, r)) - 1
		if i < 0 || i >= len(ps) {
			return nil, nil, fmt.Errorf("insert reply names job %d of %d", i+1, len(ps))
		}
		switch kind := str(arr, r+1); kind {
		case "scheduled":
			jobs[i] = newJob(ps[i], created)
			jobs[i].State, jobs[i].RunAt = broker.StateScheduled, fromMillis(num(arr, r+2))
		case "dup", "full":
			if !each {
				return nil, nil, fmt.Errorf("insert reply rejects job %d in an all-or-none batch", i+1)
			}
			errs[i] = rejection(queue, kind, str(arr, r+2), str(arr, r+3))
			stored--
		default:
			return nil, nil, fmt.Errorf("insert reply: unknown outcome %q for job %d", kind, i+1)
		}
	}
	if stored > 0 {
		// The jobs are stored: a failure to name the queue must not report
		// the insert as failed. The next insert of this broker tries again.
		_ = b.registerQueue(ctx, queue)
	}
	for i, p := range ps {
		if errs != nil && errs[i] != nil {
			continue
		}
		if jobs[i] == nil {
			jobs[i] = newJob(p, created)
		}
		if p.TTL > 0 {
			jobs[i].ExpiresAt = jobs[i].RunAt.Add(time.Duration(millis(p.TTL)) * time.Millisecond)
		}
	}
	return jobs, errs, nil
}

// boolArg is how scripts take a flag: "1" or "0".
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// rejection turns an insert.lua rejection into the documented error; b is
// the unique slot of a unique-key rejection.
func rejection(queue, kind, a, b string) error {
	if kind == "dup" {
		return &broker.DuplicateError{Queue: queue, ExistingID: a, UniqueKey: broker.UniqueKeyOfSlot(b)}
	}
	if kind == "full" {
		return fmt.Errorf("%w: it holds %s scheduled and pending jobs", broker.ErrQueueFull, a)
	}
	return fmt.Errorf("unexpected insert status %q", kind)
}

// newJob is the job p describes, pending since created.
func newJob(p *broker.JobInsertParams, created time.Time) *broker.Job {
	j := &broker.Job{
		ID: p.ID, Queue: p.Queue, Type: p.Type, Priority: broker.PriorityOrDefault(p.Priority), MaxAttempts: p.MaxAttempts,
		TenantID: p.TenantID, CompanyID: p.CompanyID, UniqueKey: p.UniqueKey, Timeout: p.Timeout,
		DeleteOnComplete: p.DeleteOnComplete, State: broker.StatePending, CreatedAt: created, RunAt: created,
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
	return j
}
