package brokertest_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aibos/worker/broker"
)

// The reference broker's broker.Committer: documents in a map, applied
// under the broker's mutex. Its faults (see faults) break one rule of the
// primitive each.

var _ broker.Committer = (*memBroker)(nil)

type memDoc struct {
	version int64
	body    []byte
	index   map[string]int64 // index name → score
}

func docID(scope, kind, key string) string { return scope + "\x00" + kind + "\x00" + key }

func (b *memBroker) Now(ctx context.Context) (time.Time, error) {
	if err := b.lock(); err != nil {
		return time.Time{}, err
	}
	defer b.mu.Unlock()
	return time.Now(), nil
}

func (b *memBroker) DocGet(ctx context.Context, scope, kind, key string) (*broker.Doc, error) {
	if err := broker.ValidateQueueName(scope); err != nil {
		return nil, fmt.Errorf("get document: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := broker.ValidateDocKey(kind, key); err != nil {
		return nil, fmt.Errorf("get document: %w: %v", broker.ErrInvalidJob, err)
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	d, ok := b.docs[docID(scope, kind, key)]
	if !ok {
		return nil, fmt.Errorf("get document %s %q: %w", kind, key, broker.ErrDocNotFound)
	}
	return &broker.Doc{Kind: kind, Key: key, Version: d.version, Body: slices.Clone(d.body)}, nil
}

func (b *memBroker) DocList(ctx context.Context, p *broker.DocListParams) (*broker.DocListResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	type entry struct {
		key   string
		score int64
		doc   *memDoc
	}
	var all []entry
	prefix := docID(p.Scope, p.Kind, "")
	for id, d := range b.docs {
		score, ok := d.index[p.Index]
		if !ok || len(id) < len(prefix) || id[:len(prefix)] != prefix {
			continue
		}
		if p.Min != 0 && score < p.Min || p.Max != 0 && score > p.Max {
			continue
		}
		all = append(all, entry{id[len(prefix):], score, d})
	}
	slices.SortFunc(all, func(x, y entry) int {
		c := cmp.Or(cmp.Compare(x.score, y.score), cmp.Compare(x.key, y.key))
		if p.Desc != b.faults.docListReversed {
			return -c
		}
		return c
	})
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	res := &broker.DocListResult{Now: time.Now(), Total: len(all)}
	for i := p.Offset; i < len(all) && i < p.Offset+limit; i++ {
		res.Docs = append(res.Docs, &broker.Doc{Kind: p.Kind, Key: all[i].key, Version: all[i].doc.version, Body: slices.Clone(all[i].doc.body)})
	}
	return res, nil
}

func (b *memBroker) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := b.lock(); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	// Applied on copies, swapped in at the end: all or nothing.
	jobs, docs := b.jobs, b.docs
	if !b.faults.commitNotAtomic {
		b.jobs = make(map[string]*memJob, len(jobs))
		for id, j := range jobs {
			c := *j
			b.jobs[id] = &c
		}
		b.docs = make(map[string]*memDoc, len(docs))
		for id, d := range docs {
			c := *d
			b.docs[id] = &c
		}
	}
	res, err := b.commit(p)
	if err != nil && !b.faults.commitNotAtomic {
		b.jobs, b.docs = jobs, docs
	}
	return res, err
}

func (b *memBroker) commit(p *broker.CommitParams) (*broker.CommitResult, error) {
	now := time.Now()
	if !p.NotBefore.IsZero() && now.Before(p.NotBefore) && !b.faults.ignoreNotBefore {
		return nil, &broker.TooEarlyError{Now: now}
	}
	res := &broker.CommitResult{Now: now}
	leased := func(lp *broker.JobLeaseParams) (*memJob, error) {
		if b.faults.commitAnyToken {
			return b.find(lp.Queue, lp.ID)
		}
		return b.leased(lp)
	}
	for _, c := range p.Complete {
		j, err := leased(&c.JobLeaseParams)
		if err != nil {
			return nil, err
		}
		if (c.Delete || j.DeleteOnComplete) && !b.faults.commitKeepsDeleted {
			delete(b.jobs, j.ID)
			continue
		}
		j.State, j.FinishedAt, j.Result = broker.StateCompleted, now, slices.Clone(c.Result)
		b.record(j, broker.AttemptCompleted, "", now)
	}
	for _, f := range p.Fail {
		j, err := leased(&f.JobLeaseParams)
		if err != nil {
			return nil, err
		}
		j.LastError = f.Error
		if !b.faults.commitDropsHeaders {
			mergeHeaders(j, f.Headers)
		}
		if f.MaxAttempts > 0 {
			j.MaxAttempts = f.MaxAttempts
		}
		if !f.Discard && j.Attempt < j.MaxAttempts {
			j.State, j.RunAt = broker.StateScheduled, now.Add(f.RetryDelay)
			b.record(j, broker.AttemptRetryScheduled, f.Error, now)
		} else {
			j.State, j.FinishedAt = broker.StateDead, now
			b.record(j, broker.AttemptDead, f.Error, now)
		}
		res.Failed = append(res.Failed, j.State)
	}
	for _, d := range p.Docs {
		id := docID(p.Scope, d.Kind, d.Key)
		cur, ok := b.docs[id]
		var v int64
		if ok {
			v = cur.version
		}
		if v != d.Version && !b.faults.casIgnoresVersion {
			return nil, fmt.Errorf("%w: document %s %q is at version %d, not %d", broker.ErrConflict, d.Kind, d.Key, v, d.Version)
		}
		if d.Delete {
			delete(b.docs, id)
			res.Versions = append(res.Versions, 0)
			continue
		}
		nd := &memDoc{version: v + 1, body: slices.Clone(d.Body), index: map[string]int64{}}
		for _, x := range d.Index {
			nd.index[x.Name] = x.Score
		}
		b.docs[id] = nd
		res.Versions = append(res.Versions, nd.version)
	}
	for _, r := range p.Reschedule {
		j, err := b.find(p.Scope, r.ID)
		if err != nil {
			return nil, err
		}
		if j.State != broker.StateScheduled && j.State != broker.StatePending {
			return nil, fmt.Errorf("reschedule job %s (%s): %w", r.ID, j.State, broker.ErrWrongState)
		}
		due := r.RunAt
		if due.Before(now) {
			due = now
		}
		if !j.ExpiresAt.IsZero() && !b.faults.rescheduleKeepsTTL {
			j.ExpiresAt = due.Add(j.ExpiresAt.Sub(j.RunAt))
		}
		j.RunAt, j.State = due, broker.StatePending
		if due.After(now) {
			j.State = broker.StateScheduled
		} else {
			b.stamp(j)
		}
	}
	for _, id := range p.Absent {
		if _, err := b.find(p.Scope, id); err == nil {
			return nil, &broker.DuplicateError{Queue: p.Scope, ExistingID: id}
		}
	}
	for _, id := range p.Cancel {
		if j, err := b.find(p.Scope, id); err == nil && !j.State.Finished() {
			if j.State == broker.StateActive {
				b.record(j, broker.AttemptCancelled, "", now)
			}
			j.State, j.FinishedAt = broker.StateCancelled, now
		}
	}
	for _, id := range p.Delete {
		j, err := b.find(p.Scope, id)
		if err != nil {
			continue
		}
		if !j.State.Finished() {
			return nil, fmt.Errorf("%w: job %s to delete is %s", broker.ErrConflict, id, j.State)
		}
		delete(b.jobs, id)
	}
	res.Jobs = make([]*broker.Job, len(p.Insert))
	res.Skipped = make([]error, len(p.Insert))
	for i, in := range p.Insert {
		err := b.checkInsert([]*broker.JobInsertParams{in.Job})
		var dup *broker.DuplicateError
		held := errors.As(err, &dup) && dup.UniqueKey != ""
		switch {
		case err == nil, held && in.Optional && b.faults.optionalWrites:
		case errors.As(err, &dup) && dup.UniqueKey == "" && in.IfAbsent,
			(held || errors.Is(err, broker.ErrQueueFull)) && in.Optional && !b.faults.optionalAborts:
			res.Skipped[i] = err
			continue
		default:
			return nil, err
		}
		j := b.store(in.Job)
		if !in.Job.RunAt.IsZero() && !in.Job.RunAt.After(now) {
			j.RunAt = in.Job.RunAt
		}
		res.Jobs[i] = clone(j)
	}
	return res, nil
}
