package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/aibos/worker/broker"
)

// WorkflowRunGet returns a run with the state of each step. ErrNotFound if
// absent.
func (s *Store) WorkflowRunGet(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, fmt.Errorf("run %s: %w", id, broker.ErrNotFound)
	}
	r, err := s.load(ctx, queue, id)
	if err != nil {
		return nil, err
	}
	if err := s.live(ctx, r); err != nil {
		return nil, err
	}
	return &r.WorkflowRun, nil
}

// Snapshot is a run as its document stored it at one version, read without
// its jobs: the outputs and states a step's input needs, at the cost of one
// read. Steps that are enqueued show as pending even while their job runs.
// A later transition may start from it (WorkflowJobCompleteFrom), saving a
// read when the run has not changed meanwhile.
type Snapshot struct {
	d *runDoc
}

// Run returns the run as the snapshot holds it. The caller must not change
// it.
func (x *Snapshot) Run() *broker.WorkflowRun { return &x.d.WorkflowRun }

// Load reads a snapshot of a run. ErrNotFound if absent.
func (s *Store) Load(ctx context.Context, queue, id string) (*Snapshot, error) {
	r, err := s.load(ctx, queue, id)
	if err != nil {
		return nil, err
	}
	return &Snapshot{d: r}, nil
}

// LoadLive reads a run with the state of each step, as WorkflowRunGet,
// and a snapshot of its document from the same read, for the completion of
// a hook job: a hook's completion changes no document, and with the
// snapshot it needs no second read. The snapshot holds the document as
// stored, not the live states.
func (s *Store) LoadLive(ctx context.Context, queue, id string) (*Snapshot, *broker.WorkflowRun, error) {
	if err := broker.ValidateQueueName(queue); err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", id, broker.ErrNotFound)
	}
	r, err := s.load(ctx, queue, id)
	if err != nil {
		return nil, nil, err
	}
	// The live copy has steps of its own, as live changes each step's
	// fields; the values those fields hold (outputs, inputs, headers) are
	// shared with the snapshot, which nothing changes in place.
	l := *r
	l.Steps = make([]*broker.WorkflowStep, len(r.Steps))
	for i, st := range r.Steps {
		c := *st
		l.Steps[i] = &c
	}
	if err := s.live(ctx, &l); err != nil {
		return nil, nil, err
	}
	return &Snapshot{d: r}, &l.WorkflowRun, nil
}

// live fills in what each step's job records itself: running or not,
// attempts, last error and timings. A completed step whose completion
// recorded them in the document (recorded) needs no read.
//
// The jobs are read concurrently: on Redis the reads share one round trip's
// worth of latency instead of one per step (a run's success hook reads the
// whole run, so this is on the path of every run).
func (s *Store) live(ctx context.Context, r *runDoc) error {
	jobs := make([]*broker.Job, len(r.Steps))
	errs := make([]error, len(r.Steps))
	var wg sync.WaitGroup
	for i, st := range r.Steps {
		if st.State == broker.StepWaiting || recorded(st) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs[i], errs[i] = s.b.JobGet(ctx, &broker.JobGetParams{Queue: r.Queue, ID: st.Job.ID})
		}()
	}
	wg.Wait()
	for i, st := range r.Steps {
		if st.State == broker.StepWaiting || recorded(st) {
			continue
		}
		j, err := jobs[i], errs[i]
		if errors.Is(err, broker.ErrNotFound) {
			continue // removed by an operator: the document is all there is
		}
		if err != nil {
			return fmt.Errorf("read job %s of run %s: %w", st.Job.ID, r.ID, err)
		}
		st.Attempts, st.StartedAt = j.Attempt, j.StartedAt
		switch st.State {
		case broker.StepPending:
			st.Error = j.LastError
			if j.State == broker.StateActive {
				st.State = broker.StepRunning
			}
		case broker.StepFailed:
			st.FinishedAt = j.FinishedAt
		case broker.StepCompleted, broker.StepCancelled:
			st.FinishedAt = j.FinishedAt
			if st.State == broker.StepCancelled {
				st.Error = j.LastError
			}
		}
	}
	return nil
}

// recorded reports whether st completed with its attempt's record in the
// document (completeStep). Completions by earlier releases did not record
// it: their steps' jobs are read.
func recorded(st *broker.WorkflowStep) bool {
	return st.State == broker.StepCompleted && st.Attempts > 0 && !st.FinishedAt.IsZero()
}

// WorkflowRunList lists a queue's runs of one workflow, newest first,
// optionally in one state.
func (s *Store) WorkflowRunList(ctx context.Context, p *broker.WorkflowRunListParams) (*broker.WorkflowRunListResult, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: list runs: params are nil", broker.ErrInvalidJob)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	index := runIndex(p.Workflow, "", false, p.State)
	l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kindRun, Index: index, Desc: true,
		Offset: p.Offset, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	res := &broker.WorkflowRunListResult{NextOffset: -1}
	if len(l.Docs) > limit {
		l.Docs, res.NextOffset = l.Docs[:limit], p.Offset+limit
	}
	for _, d := range l.Docs {
		r, err := decode(d)
		if err != nil {
			return nil, err
		}
		if err := s.live(ctx, r); err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, &r.WorkflowRun)
	}
	return res, nil
}

// WorkflowRunMaintain applies the retention rules of p to the finished
// runs (succeeded, failed or cancelled) of p.Queue and returns how many it
// removed. A run is past the rules when it finished longer than
// FinishedMaxAge ago, or when it is not among the FinishedMaxCount runs of
// the queue that finished last (ties by run id). A removed run is removed
// whole, in one commit per call: the run, its idempotency key (which a new
// run may then take), every index entry, and the finished jobs that
// carried it. A running run is never removed, nor a finished run one of
// whose jobs is still unfinished (a compensation or hook not yet done): it
// is skipped, and kept until a call after that job finishes. Each rule
// examines at most p.Limit runs. Safe to call from many workers at once.
func (s *Store) WorkflowRunMaintain(ctx context.Context, p *broker.WorkflowRunMaintainParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 1000
	}
	var candidates []*runDoc
	seen := map[string]bool{}
	add := func(docs []*broker.Doc, keep func(*runDoc) bool) error {
		for _, d := range docs {
			r, err := decode(d)
			if err != nil {
				return err
			}
			if !seen[r.ID] && keep(r) {
				seen[r.ID] = true
				candidates = append(candidates, r)
			}
		}
		return nil
	}
	if p.FinishedMaxAge > 0 {
		l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kindRun, Index: indexFinish, Limit: limit})
		if err != nil {
			return 0, err
		}
		cutoff := l.Now.Add(-p.FinishedMaxAge)
		if err := add(l.Docs, func(r *runDoc) bool { return r.FinishedAt.Before(cutoff) }); err != nil {
			return 0, err
		}
	}
	if p.FinishedMaxCount > 0 {
		// Oldest first: the runs past the count are the first Total-count.
		l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kindRun, Index: indexFinish, Limit: limit})
		if err != nil {
			return 0, err
		}
		excess := max(l.Total-p.FinishedMaxCount, 0)
		if err := add(l.Docs[:min(excess, len(l.Docs))], func(*runDoc) bool { return true }); err != nil {
			return 0, err
		}
	}
	var removals []*broker.CommitParams
	for _, r := range candidates {
		cp, err := s.removal(ctx, r)
		if err != nil {
			return 0, err
		}
		if cp != nil {
			removals = append(removals, cp)
		}
	}
	if len(removals) == 0 {
		return 0, nil
	}
	all := &broker.CommitParams{Scope: p.Queue}
	for _, cp := range removals {
		all.Docs = append(all.Docs, cp.Docs...)
		all.Delete = append(all.Delete, cp.Delete...)
	}
	_, err := s.commit(ctx, all)
	if err == nil {
		return len(removals), nil
	}
	if !errors.Is(err, broker.ErrConflict) {
		return 0, err
	}
	// A run changed (or one of its jobs was retried) since it was read:
	// remove the others one by one, leaving it to a later call.
	n := 0
	for _, cp := range removals {
		_, err := s.commit(ctx, cp)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, broker.ErrConflict):
			return n, err
		}
	}
	return n, nil
}

// removal returns the commit that removes finished run r whole, or nil if
// one of its jobs is unfinished.
func (s *Store) removal(ctx context.Context, r *runDoc) (*broker.CommitParams, error) {
	ids := runJobIDs(r)
	cp := &broker.CommitParams{Scope: r.Queue, Docs: []*broker.DocWrite{{Kind: kindRun, Key: r.ID, Version: r.version, Delete: true}}}
	for _, id := range ids {
		j, err := s.b.JobGet(ctx, &broker.JobGetParams{Queue: r.Queue, ID: id})
		if errors.Is(err, broker.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read job %s of run %s: %w", id, r.ID, err)
		}
		if !j.State.Finished() {
			return nil, nil
		}
		cp.Delete = append(cp.Delete, id)
	}
	if r.IdempotencyKey != "" {
		d, err := s.c.DocGet(ctx, r.Queue, kindIdem, r.IdempotencyKey)
		switch {
		case err == nil:
			var owner string
			if json.Unmarshal(d.Body, &owner) == nil && owner == r.ID {
				cp.Docs = append(cp.Docs, &broker.DocWrite{Kind: kindIdem, Key: r.IdempotencyKey, Version: d.Version, Delete: true})
			}
		case !errors.Is(err, broker.ErrDocNotFound):
			return nil, err
		}
	}
	return cp, nil
}
