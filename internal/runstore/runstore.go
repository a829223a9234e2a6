// Package runstore holds the rules of workflow runs, written once on the
// generic atomic primitive of the broker seam (broker.Committer): creation,
// step completion with fan-in, step failure with the compensation chain and
// hooks, cancel, reads, listing and retention. Package workflow is its
// public face; the conformance suite (broker/brokertest) drives it step by
// step on every broker, which is why it is an internal package of the
// module rather than of package workflow.
//
// A run is one document (kind "run", key the run id) in its queue's scope:
// the broker.WorkflowRun with the progress that is not a job's own (step
// state, outputs, completion order, the compensation chain). What a job
// records itself (a step running, its attempts, last error and timings) is
// read from the step's job when the run is read. An idempotency key is a
// document of kind "idem" naming its run. Indexes: "wf:<workflow>" and
// "wf:<workflow>:<state>" (score: created ms) list runs newest first,
// "tenant:<tenant>" (score: created ms) lists a tenant's runs for a purge,
// and "finished" (score: finished ms) feeds retention.
//
// Every transition is one Commit: a step's completion, the run document's
// compare-and-set and the insert of every step it unblocks are applied
// together or not at all. Two parallel branches finishing together both
// read the same run version; one commit wins, the other gets
// broker.ErrConflict, re-reads and retries, so a fan-in step is inserted
// exactly once.
package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aibos/worker/broker"
)

// Document kinds and index names.
const (
	kindRun      = "run"
	kindIdem     = "idem"
	indexFinish  = "finished"
	indexRuns    = "runs" // every run of the queue, by created time: key rotation walks it
	maxConflicts = 1000   // retries of one transition that keeps losing version races
)

// Store keeps runs on a broker that implements broker.Committer. It is safe
// for concurrent use.
type Store struct {
	b broker.Broker
	c broker.Committer
	// skew is the broker clock minus the local clock (ns) as last seen in
	// a commit: run times (created, finished) are taken from the local clock
	// corrected by it, so they follow the broker's without a read of their
	// own.
	skew atomic.Int64
	// skewSeen is set once a commit gave skew: before that, now is the
	// local clock, which may be anything.
	skewSeen atomic.Bool
	// OnOutcome, when set, is told of every outcome a committed transition
	// gave a run: each is reported once, by the store whose commit made it.
	// Set it before the store is used.
	OnOutcome func(run *broker.WorkflowRun, o Outcome)
}

// Outcome is what a transition did to a run as a whole.
type Outcome string

// The outcomes reported to Store.OnOutcome.
const (
	OutcomeSucceeded   Outcome = "succeeded"   // the last step completed
	OutcomeFailed      Outcome = "failed"      // a step died
	OutcomeCompensated Outcome = "compensated" // every compensation of a failed run completed
)

// report tells OnOutcome about r's outcomes once its transition committed.
func (s *Store) report(r *runDoc) {
	if s.OnOutcome == nil || r == nil {
		return
	}
	for _, o := range r.outcomes {
		s.OnOutcome(&r.WorkflowRun, o)
	}
}

// New returns a Store on b. It fails if b does not implement
// broker.Committer.
func New(b broker.Broker) (*Store, error) {
	c, ok := b.(broker.Committer)
	if !ok {
		return nil, fmt.Errorf("broker %T does not implement broker.Committer", b)
	}
	return &Store{b: b, c: c}, nil
}

// runDoc is a run as its document stores it.
type runDoc struct {
	broker.WorkflowRun
	Completions int      `json:"completions,omitempty"` // steps completed so far
	Chain       []string `json:"chain,omitempty"`       // steps to compensate, in order
	ChainNext   int      `json:"chain_next,omitempty"`  // compensations started
	version     int64
	at          time.Time // the broker's clock when it was read: a transition's time
	atKnown     bool      // at follows the broker's clock (Store.skewSeen), not only the local one
	outcomes    []Outcome // what the transition under way did to the run
}

// now is the broker's clock as last observed, in milliseconds.
func (s *Store) now() time.Time {
	return time.Now().Add(time.Duration(s.skew.Load())).UTC().Truncate(time.Millisecond)
}

// stamp sets r's transition time from the broker's clock as last seen.
func (s *Store) stamp(r *runDoc) {
	r.at, r.atKnown = s.now(), s.skewSeen.Load()
}

func (s *Store) observe(brokerNow time.Time) {
	if !brokerNow.IsZero() {
		s.skew.Store(int64(time.Until(brokerNow)))
		s.skewSeen.Store(true)
	}
}

func (s *Store) commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	res, err := s.c.Commit(ctx, p)
	if err == nil {
		s.observe(res.Now)
	}
	return res, err
}

// load reads a run's document. ErrNotFound if there is none.
func (s *Store) load(ctx context.Context, queue, id string) (*runDoc, error) {
	d, err := s.c.DocGet(ctx, queue, kindRun, id)
	if errors.Is(err, broker.ErrDocNotFound) {
		return nil, fmt.Errorf("run %s in queue %q: %w", id, queue, broker.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r, err := decode(d)
	if err != nil {
		return nil, err
	}
	s.stamp(r)
	return r, nil
}

func decode(d *broker.Doc) (*runDoc, error) {
	r := &runDoc{version: d.Version}
	if err := json.Unmarshal(d.Body, r); err != nil {
		return nil, fmt.Errorf("decode run %s: %w", d.Key, err)
	}
	return r, nil
}

// write is the compare-and-set write of r with its index entries.
// commitRun commits cp, writing r's document with it when the transition
// changed the run.
func (s *Store) commitRun(ctx context.Context, r *runDoc, cp *broker.CommitParams, changed bool) (*broker.CommitResult, error) {
	if changed {
		w, err := r.write()
		if err != nil {
			return nil, err
		}
		cp.Docs = append(cp.Docs, w)
	}
	return s.commit(ctx, cp)
}

func (r *runDoc) write() (*broker.DocWrite, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode run %s: %w", r.ID, err)
	}
	created := r.CreatedAt.UnixMilli()
	w := &broker.DocWrite{Kind: kindRun, Key: r.ID, Version: r.version, Body: body, Index: []broker.IndexEntry{
		{Name: runIndex(r.Workflow, "", false, ""), Score: created},
		{Name: runIndex(r.Workflow, "", false, r.State), Score: created},
	}}
	if r.TenantID != "" {
		// A tenant's own indexes, for scoped lists; a run of no tenant is
		// in no tenant's scope and needs none.
		w.Index = append(w.Index, broker.IndexEntry{Name: runIndex(r.Workflow, r.TenantID, true, ""), Score: created},
			broker.IndexEntry{Name: runIndex(r.Workflow, r.TenantID, true, r.State), Score: created})
	}
	w.Index = append(w.Index, broker.IndexEntry{Name: indexRuns, Score: created})
	if r.State != broker.WorkflowRunning {
		w.Index = append(w.Index, broker.IndexEntry{Name: indexFinish, Score: r.FinishedAt.UnixMilli()})
	}
	if r.TenantID != "" {
		w.Index = append(w.Index, broker.IndexEntry{Name: tenantIndex(r.TenantID), Score: created})
	}
	return w, nil
}

// insert is the insert of a template as a job of run r.
func (r *runDoc) insert(t *broker.WorkflowJob) *broker.CommitInsert {
	return &broker.CommitInsert{IfAbsent: true, Job: &broker.JobInsertParams{ID: t.ID, Queue: r.Queue, Type: t.Type,
		Data: t.Data, Priority: t.Priority, MaxAttempts: t.MaxAttempts, Timeout: t.Timeout,
		TenantID: r.TenantID, CompanyID: r.CompanyID, Headers: r.Headers}}
}

// retry runs one transition until it commits without a version conflict.
func retry(ctx context.Context, what string, f func() error) error {
	for i := 0; ; i++ {
		err := f()
		if !errors.Is(err, broker.ErrConflict) {
			return err
		}
		if i == maxConflicts {
			return fmt.Errorf("%s: lost %d version races in a row: %w", what, i+1, err)
		}
		// A short random pause spreads the losers of a race.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << min(i, 5))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// WorkflowRunCreate stores a new run and inserts the jobs of the steps that
// depend on nothing, in one commit. If p.IdempotencyKey is set and a run of
// the queue already holds it, nothing is written and that run is returned
// with created false. A run id that exists is a *DuplicateError. An invalid
// p is an *InvalidError.
func (s *Store) WorkflowRunCreate(ctx context.Context, p *broker.WorkflowRunCreateParams) (*broker.WorkflowRun, bool, error) {
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	r := &runDoc{WorkflowRun: broker.WorkflowRun{ID: p.ID, Queue: p.Queue, Workflow: p.Workflow, TenantID: p.TenantID,
		CompanyID: p.CompanyID, IdempotencyKey: p.IdempotencyKey, State: broker.WorkflowRunning, Input: p.Input,
		CreatedAt: s.now(), OnSuccess: p.OnSuccess, OnFailure: p.OnFailure, Headers: p.Headers}}
	cp := &broker.CommitParams{Scope: p.Queue}
	for _, d := range p.Steps {
		st := &broker.WorkflowStep{WorkflowStepDef: d, State: broker.StepWaiting}
		if len(d.DependsOn) == 0 {
			st.State = broker.StepPending
			cp.Insert = append(cp.Insert, r.insert(&st.Job))
		}
		r.Steps = append(r.Steps, st)
	}
	// Every job id of the run must be free: the ones inserted now, and the
	// ones inserted later, which retention would otherwise remove with it.
	for _, in := range cp.Insert {
		in.IfAbsent = false
	}
	for _, st := range r.Steps {
		if st.State == broker.StepWaiting {
			cp.Absent = append(cp.Absent, st.Job.ID)
		}
		if st.Compensation != nil {
			cp.Absent = append(cp.Absent, st.Compensation.ID)
		}
	}
	for _, h := range []*broker.WorkflowJob{p.OnSuccess, p.OnFailure} {
		if h != nil {
			cp.Absent = append(cp.Absent, h.ID)
		}
	}
	w, err := r.write()
	if err != nil {
		return nil, false, err
	}
	cp.Docs = append(cp.Docs, w)
	if p.IdempotencyKey != "" {
		cp.Docs = append(cp.Docs, &broker.DocWrite{Kind: kindIdem, Key: p.IdempotencyKey, Body: json.RawMessage(strconv.Quote(p.ID))})
	}
	for i := 0; ; i++ {
		_, err := s.commit(ctx, cp)
		if err == nil {
			return &r.WorkflowRun, true, nil
		}
		if i == maxConflicts {
			return nil, false, fmt.Errorf("create run %s: lost %d version races in a row: %w", p.ID, i+1, err)
		}
		if !errors.Is(err, broker.ErrConflict) {
			return nil, false, err
		}
		// The id or the idempotency key is taken: say which.
		if p.IdempotencyKey != "" {
			d, err := s.c.DocGet(ctx, p.Queue, kindIdem, p.IdempotencyKey)
			if err == nil {
				var id string
				if err := json.Unmarshal(d.Body, &id); err != nil {
					return nil, false, fmt.Errorf("decode idempotency key %q: %w", p.IdempotencyKey, err)
				}
				run, err := s.WorkflowRunGet(ctx, p.Queue, id)
				if errors.Is(err, broker.ErrNotFound) {
					continue // removed meanwhile: try again
				}
				return run, false, err
			}
			if !errors.Is(err, broker.ErrDocNotFound) {
				return nil, false, err
			}
		}
		if _, err := s.c.DocGet(ctx, p.Queue, kindRun, p.ID); err == nil {
			return nil, false, &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID}
		}
	}
}

// find returns the kind ("step", "comp", "ok", "fail") of the job id in r
// and its step, or "" if the job is not one of r's.
func (r *runDoc) find(id string) (string, *broker.WorkflowStep) {
	for _, st := range r.Steps {
		if st.Job.ID == id {
			return "step", st
		}
		if st.Compensation != nil && st.Compensation.ID == id {
			return "comp", st
		}
	}
	switch {
	case r.OnSuccess != nil && r.OnSuccess.ID == id:
		return "ok", nil
	case r.OnFailure != nil && r.OnFailure.ID == id:
		return "fail", nil
	}
	return "", nil
}

// loadFor reads the run that job id belongs to.
func (s *Store) loadFor(ctx context.Context, queue, run, id string) (*runDoc, string, *broker.WorkflowStep, error) {
	r, err := s.load(ctx, queue, run)
	if err != nil {
		return nil, "", nil, err
	}
	kind, st := r.find(id)
	if kind == "" {
		return nil, "", nil, fmt.Errorf("job %s is not a job of run %s: %w", id, run, broker.ErrNotFound)
	}
	return r, kind, st, nil
}

// WorkflowJobComplete completes a job of run p.Run (a step, compensation
// or hook job) under its lease and, in the same commit, records a step's
// output and inserts the jobs of every step it unblocks (fan-in: a step is
// unblocked when all its dependencies have completed); the last step
// succeeds the run and inserts its success hook. A compensation's
// completion starts the next compensation, or the failure hook. It returns
// ErrLeaseLost or ErrNotFound as JobComplete does for the job, and
// ErrNotFound if the run does not exist or the job is not one of its.
func (s *Store) WorkflowJobComplete(ctx context.Context, p *broker.WorkflowJobCompleteParams) error {
	return s.WorkflowJobCompleteFrom(ctx, nil, p)
}

// WorkflowJobCompleteFrom is WorkflowJobComplete starting from a snapshot
// of the run read earlier (nil: none): its first attempt commits against the
// snapshot's version without reading the run again; if the run changed
// since, the commit conflicts and the transition re-reads it.
func (s *Store) WorkflowJobCompleteFrom(ctx context.Context, from *Snapshot, p *broker.WorkflowJobCompleteParams) error {
	if p == nil {
		return fmt.Errorf("complete workflow job: %w: params are nil", broker.ErrInvalidJob)
	}
	if p.Attempt < 0 {
		return fmt.Errorf("complete workflow job %s: %w: attempt %d is negative", p.ID, broker.ErrInvalidJob, p.Attempt)
	}
	if p.Attempt > 0 && p.StartedAt.IsZero() {
		return fmt.Errorf("complete workflow job %s: %w: attempt %d has no start time", p.ID, broker.ErrInvalidJob, p.Attempt)
	}
	if from != nil && (from.d.ID != p.Run || from.d.Queue != p.Queue) {
		from = nil
	}
	var done *runDoc
	err := retry(ctx, "complete job "+p.ID, func() error {
		var r *runDoc
		if from != nil {
			// The snapshot is used once: a retry reads the run afresh.
			r, from = from.d, nil
			s.stamp(r)
		} else {
			var err error
			if r, err = s.load(ctx, p.Queue, p.Run); err != nil {
				return err
			}
		}
		kind, st := r.find(p.ID)
		if kind == "" {
			return fmt.Errorf("job %s is not a job of run %s: %w", p.ID, p.Run, broker.ErrNotFound)
		}
		cp := &broker.CommitParams{Scope: p.Queue, Complete: []*broker.JobCompleteParams{&p.JobCompleteParams}}
		changed := false
		switch {
		case kind == "step" && r.State == broker.WorkflowRunning && st.State == broker.StepPending:
			changed = true
			r.completeStep(st, p, cp)
		case kind == "comp" && st.CompensationState == broker.CompensationPending:
			changed = true
			st.CompensationState = broker.CompensationCompleted
			r.advance(cp)
		}
		if _, err := s.commitRun(ctx, r, cp, changed); err != nil {
			return err
		}
		done = r
		return nil
	})
	if err == nil {
		s.report(done)
	}
	return err
}

// completeStep records st's completion by p in r, with the attempt's
// record when p gives it (recorded), and adds to cp the steps it unblocks,
// or the success of the run.
func (r *runDoc) completeStep(st *broker.WorkflowStep, p *broker.WorkflowJobCompleteParams, cp *broker.CommitParams) {
	r.Completions++
	st.State, st.Output, st.CompletedSeq, st.Error = broker.StepCompleted, p.Result, r.Completions, ""
	if p.Attempt > 0 && r.atKnown {
		// The transition's time is the broker's clock as this store last
		// saw it; the job's own finish time may differ by a few
		// milliseconds, never placing the finish before the start. A
		// store that has not seen the broker's clock yet (its first
		// commit) records nothing: the step is read from its job.
		st.Attempts, st.StartedAt, st.FinishedAt = p.Attempt, p.StartedAt, r.at
		if st.FinishedAt.Before(st.StartedAt) {
			st.FinishedAt = st.StartedAt
		}
	}
	done := map[string]bool{}
	for _, x := range r.Steps {
		done[x.Name] = x.State == broker.StepCompleted
	}
	all := true
	for _, x := range r.Steps {
		if x.State == broker.StepWaiting && !slices.ContainsFunc(x.DependsOn, func(d string) bool { return !done[d] }) {
			x.State = broker.StepPending
			cp.Insert = append(cp.Insert, r.insert(&x.Job))
		}
		all = all && x.State == broker.StepCompleted
	}
	if all {
		r.finish(broker.WorkflowSucceeded)
		r.outcomes = append(r.outcomes, OutcomeSucceeded)
		if r.OnSuccess != nil {
			cp.Insert = append(cp.Insert, r.insert(r.OnSuccess))
		}
	}
}

// finish moves the run to a final state.
func (r *runDoc) finish(state broker.WorkflowState) {
	r.State, r.FinishedAt = state, r.at
}

// advance adds to cp the next compensation of a failed run, or the failure
// hook once every compensation has finished.
func (r *runDoc) advance(cp *broker.CommitParams) {
	r.ChainNext++
	if r.ChainNext <= len(r.Chain) {
		st := r.WorkflowRun.Step(r.Chain[r.ChainNext-1])
		st.CompensationState = broker.CompensationPending
		cp.Insert = append(cp.Insert, r.insert(st.Compensation))
		return
	}
	if r.ChainNext == len(r.Chain)+1 && len(r.Chain) > 0 && !slices.ContainsFunc(r.Chain, func(name string) bool {
		return r.WorkflowRun.Step(name).CompensationState != broker.CompensationCompleted
	}) {
		r.outcomes = append(r.outcomes, OutcomeCompensated)
	}
	if r.ChainNext == len(r.Chain)+1 && r.OnFailure != nil {
		cp.Insert = append(cp.Insert, r.insert(r.OnFailure))
	}
}

// WorkflowJobFail records a failed attempt of a job of run p.Run, as
// JobFail does (honouring Discard, RetryDelay and MaxAttempts), and returns
// the job's new state. When a step's job dies, the same commit fails the
// run, cancels the run's other unfinished step jobs and inserts the first
// compensation job (the most recently completed step's), or the failure
// hook; a compensation's death starts the next one. Errors as for
// WorkflowJobComplete.
func (s *Store) WorkflowJobFail(ctx context.Context, p *broker.WorkflowJobFailParams) (broker.State, error) {
	if p == nil {
		return "", fmt.Errorf("fail workflow job: %w: params are nil", broker.ErrInvalidJob)
	}
	// Under the lease the job's attempt and max attempts cannot change, so
	// whether this failure kills it is known before the commit.
	j, err := s.b.JobGet(ctx, &broker.JobGetParams{Queue: p.Queue, ID: p.ID})
	if err != nil {
		return "", err
	}
	maxAttempts := j.MaxAttempts
	if p.MaxAttempts > 0 {
		maxAttempts = p.MaxAttempts
	}
	dies := p.Discard || j.Attempt >= maxAttempts
	var state broker.State
	var done *runDoc
	err = retry(ctx, "fail job "+p.ID, func() error {
		cp := &broker.CommitParams{Scope: p.Queue, Fail: []*broker.JobFailParams{&p.JobFailParams}}
		r, kind, st, err := s.loadFor(ctx, p.Queue, p.Run, p.ID)
		if err != nil {
			return err
		}
		changed := false
		switch {
		case !dies:
		case kind == "step" && r.State == broker.WorkflowRunning && st.State == broker.StepPending:
			changed = true
			r.failRun(st, p.Error, cp)
		case kind == "comp" && st.CompensationState == broker.CompensationPending:
			changed = true
			st.CompensationState = broker.CompensationFailed
			r.advance(cp)
		}
		res, err := s.commitRun(ctx, r, cp, changed)
		if err != nil {
			return err
		}
		state, done = res.Failed[0], r
		return nil
	})
	if err == nil {
		s.report(done)
	}
	return state, err
}

// failRun fails the run because step st died with msg: its other open
// steps are cancelled (their jobs too) and the compensations of completed
// steps start, most recently completed first.
func (r *runDoc) failRun(st *broker.WorkflowStep, msg string, cp *broker.CommitParams) {
	st.State, st.Error = broker.StepFailed, msg
	r.cancelOpen(cp)
	r.Error, r.FailedStep = msg, st.Name
	r.finish(broker.WorkflowFailed)
	r.outcomes = append(r.outcomes, OutcomeFailed)
	var done []*broker.WorkflowStep
	for _, x := range r.Steps {
		if x.Compensation != nil && x.State == broker.StepCompleted {
			done = append(done, x)
		}
	}
	slices.SortFunc(done, func(a, b *broker.WorkflowStep) int { return b.CompletedSeq - a.CompletedSeq })
	r.Chain = nil
	for _, x := range done {
		r.Chain = append(r.Chain, x.Name)
	}
	r.ChainNext = 0
	r.advance(cp)
}

// cancelOpen cancels every step not finished: the jobs of enqueued steps
// (an active job loses its lease) and the waiting steps.
func (r *runDoc) cancelOpen(cp *broker.CommitParams) {
	for _, x := range r.Steps {
		switch x.State {
		case broker.StepPending:
			cp.Cancel = append(cp.Cancel, x.Job.ID)
			x.State = broker.StepCancelled
		case broker.StepWaiting:
			x.State = broker.StepCancelled
		}
	}
}

// WorkflowRunCancel cancels a running run: the jobs of its enqueued steps
// are cancelled (an active one loses its lease, as with JobCancel), its
// waiting steps are cancelled, and the run is cancelled. No compensation
// or hook runs. ErrWrongState if the run is already finished; ErrNotFound
// if absent.
func (s *Store) WorkflowRunCancel(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	err := retry(ctx, "cancel run "+id, func() error {
		r, err := s.load(ctx, queue, id)
		if err != nil {
			return err
		}
		if r.State != broker.WorkflowRunning {
			return fmt.Errorf("run %s is %s: %w", id, r.State, broker.ErrWrongState)
		}
		cp := &broker.CommitParams{Scope: queue}
		r.cancelOpen(cp)
		r.finish(broker.WorkflowCancelled)
		w, err := r.write()
		if err != nil {
			return err
		}
		cp.Docs = []*broker.DocWrite{w}
		_, err = s.commit(ctx, cp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.WorkflowRunGet(ctx, queue, id)
}
