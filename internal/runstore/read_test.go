package runstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/testbroker"
)

// countingBroker counts JobGet calls of a real broker.
type countingBroker struct {
	broker.Broker
	broker.Committer
	gets atomic.Int64
}

func (c *countingBroker) JobGet(ctx context.Context, p *broker.JobGetParams) (*broker.Job, error) {
	c.gets.Add(1)
	return c.Broker.JobGet(ctx, p)
}

// TestRecordedStepsNeedNoRead: a step completed with its attempt's record
// (as the workflow package completes every step) shows that record when
// the run is read, and the read gets no job for it; a step completed
// without one (an earlier release) is read from its job, as before.
func TestRecordedStepsNeedNoRead(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		cb := &countingBroker{Broker: b, Committer: b.(broker.Committer)}
		s, err := runstore.New(cb)
		if err != nil {
			t.Fatal(err)
		}
		const q = "workflows"
		jobs := startSteps(t, s, b, q, "r1", "old", "new", "late")
		byID := map[string]*broker.Job{}
		for _, j := range jobs {
			byID[j.ID] = j
		}
		complete := func(j *broker.Job, attempt int, started time.Time) {
			t.Helper()
			err := s.WorkflowJobComplete(ctx, &broker.WorkflowJobCompleteParams{
				JobCompleteParams: broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: j.ID, Token: j.LeaseToken}},
				Run:               "r1", Attempt: attempt, StartedAt: started})
			if err != nil {
				t.Fatalf("complete %s: %v", j.ID, err)
			}
		}
		// The record says attempt 2 and a start an hour back: what the
		// job says (attempt 1, just now) would show if the job were read.
		started := jobs[0].StartedAt.Add(-time.Hour)
		complete(byID["r1:new"], 2, started)
		complete(byID["r1:old"], 0, time.Time{})
		// A start after the store's clock: the finish is not put before it.
		ahead := jobs[0].StartedAt.Add(time.Hour)
		complete(byID["r1:late"], 1, ahead)

		cb.gets.Store(0)
		run, err := s.WorkflowRunGet(ctx, q, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if run.State != broker.WorkflowSucceeded {
			t.Fatalf("run %s, want succeeded", run.State)
		}
		if n := cb.gets.Load(); n != 1 {
			t.Errorf("reading the run got %d jobs, want 1 (the step completed without a record)", n)
		}
		nw, old := run.Step("new"), run.Step("old")
		// The finish is the transition's time: the broker's clock as the
		// store estimates it, within milliseconds of the job's.
		if d := nw.FinishedAt.Sub(jobs[0].StartedAt); nw.Attempts != 2 || !nw.StartedAt.Equal(started) || d < -time.Second || d > time.Minute {
			t.Errorf("recorded step: attempts %d started %v finished %v, want 2, %v, about %v",
				nw.Attempts, nw.StartedAt, nw.FinishedAt, started, jobs[0].StartedAt)
		}
		if late := run.Step("late"); !late.FinishedAt.Equal(ahead) {
			t.Errorf("a step recorded as started at %v finished at %v, want the start", ahead, late.FinishedAt)
		}
		oj := byID["r1:old"]
		if old.Attempts != 1 || !old.StartedAt.Equal(oj.StartedAt) || old.FinishedAt.IsZero() {
			t.Errorf("step without a record: attempts %d started %v finished %v, want the job's (1, %v)",
				old.Attempts, old.StartedAt, old.FinishedAt, oj.StartedAt)
		}

		for _, bad := range []*broker.WorkflowJobCompleteParams{{Attempt: -1}, {Attempt: 1}} {
			bad.Run, bad.JobCompleteParams = "r1", broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: "r1:new", Token: 1}}
			if err := s.WorkflowJobComplete(ctx, bad); !errors.Is(err, broker.ErrInvalidJob) {
				t.Errorf("attempt %d started %v: %v, want ErrInvalidJob", bad.Attempt, bad.StartedAt, err)
			}
		}
	})
}

// startSteps creates run id in queue q with independent steps of the
// given names (job ids id:name) through s, and fetches their jobs from b.
func startSteps(t *testing.T, s *runstore.Store, b broker.Broker, q, id string, names ...string) []*broker.Job {
	t.Helper()
	ctx := context.Background()
	p := &broker.WorkflowRunCreateParams{ID: id, Queue: q, Workflow: "w", Input: json.RawMessage(`{}`)}
	for _, n := range names {
		p.Steps = append(p.Steps, broker.WorkflowStepDef{Name: n, Job: broker.WorkflowJob{ID: id + ":" + n, Type: "workflow.step", MaxAttempts: 3}})
	}
	if _, _, err := s.WorkflowRunCreate(ctx, p); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: len(names), LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != len(names) {
		t.Fatalf("fetch: %d jobs, %v", len(jobs), err)
	}
	return jobs
}

// TestFirstCommitRecordsNothing: a store that has not yet seen the
// broker's clock (no commit of its own so far) has only the local clock for
// a step's finish, which may be anything; it records no attempt, and the
// step is read from its job. Its next completion, after that commit, is
// recorded.
func TestFirstCommitRecordsNothing(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		s, err := runstore.New(b)
		if err != nil {
			t.Fatal(err)
		}
		const q = "workflows"
		jobs := startSteps(t, s, b, q, "r2", "a", "b")
		fresh, err := runstore.New(b) // a worker that has just started
		if err != nil {
			t.Fatal(err)
		}
		started := jobs[0].StartedAt.Add(-time.Hour)
		for _, j := range jobs {
			err := fresh.WorkflowJobComplete(ctx, &broker.WorkflowJobCompleteParams{
				JobCompleteParams: broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: j.ID, Token: j.LeaseToken}},
				Run:               "r2", Attempt: 2, StartedAt: started})
			if err != nil {
				t.Fatalf("complete %s: %v", j.ID, err)
			}
		}
		run, err := s.WorkflowRunGet(ctx, q, "r2")
		if err != nil {
			t.Fatal(err)
		}
		first, second := run.Step(jobs[0].ID[len("r2:"):]), run.Step(jobs[1].ID[len("r2:"):])
		if first.Attempts != 1 || !first.StartedAt.Equal(jobs[0].StartedAt) {
			t.Errorf("first completion: attempts %d started %v, want its job's: 1, %v", first.Attempts, first.StartedAt, jobs[0].StartedAt)
		}
		if second.Attempts != 2 || !second.StartedAt.Equal(started) {
			t.Errorf("second completion: attempts %d started %v, want its record: 2, %v", second.Attempts, second.StartedAt, started)
		}
	})
}

// docCounting counts DocGet calls too.
type docCounting struct {
	*countingBroker
	docs atomic.Int64
}

func (c *docCounting) DocGet(ctx context.Context, scope, kind, key string) (*broker.Doc, error) {
	c.docs.Add(1)
	return c.countingBroker.Committer.DocGet(ctx, scope, kind, key)
}

// TestLoadLiveSnapshot: LoadLive gives the run's live states and a
// snapshot of the document as stored, from one read, and a hook's
// completion from that snapshot reads the run no more.
func TestLoadLiveSnapshot(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		cb := &docCounting{countingBroker: &countingBroker{Broker: b, Committer: b.(broker.Committer)}}
		s, err := runstore.New(struct {
			broker.Broker
			broker.Committer
		}{cb.countingBroker, cb})
		if err != nil {
			t.Fatal(err)
		}
		const q = "workflows"
		p := &broker.WorkflowRunCreateParams{ID: "r1", Queue: q, Workflow: "w", Input: json.RawMessage(`{}`),
			Steps: []broker.WorkflowStepDef{
				{Name: "a", Job: broker.WorkflowJob{ID: "r1:a", Type: "workflow.step", MaxAttempts: 3}},
				{Name: "b", Job: broker.WorkflowJob{ID: "r1:b", Type: "workflow.step", MaxAttempts: 3}},
			},
			OnSuccess: &broker.WorkflowJob{ID: "r1:ok", Type: "workflow.hook", MaxAttempts: 3}}
		if _, _, err := s.WorkflowRunCreate(ctx, p); err != nil {
			t.Fatal(err)
		}
		fetch := func(n int) []*broker.Job {
			t.Helper()
			jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: q, Limit: n, LeaseDuration: time.Minute, WorkerID: "w"})
			if err != nil || len(jobs) != n {
				t.Fatalf("fetch: %d jobs, %v, want %d", len(jobs), err, n)
			}
			return jobs
		}
		a := fetch(1)[0] // a runs; b waits
		snap, run, err := s.LoadLive(ctx, q, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if got := run.Step(a.ID[3:]).State; got != broker.StepRunning {
			t.Errorf("live state of the running step: %s", got)
		}
		if got := snap.Run().Step(a.ID[3:]).State; got != broker.StepPending {
			t.Errorf("the snapshot's state of the running step: %s, want pending as stored", got)
		}
		complete := func(from *runstore.Snapshot, j *broker.Job) {
			t.Helper()
			err := s.WorkflowJobCompleteFrom(ctx, from, &broker.WorkflowJobCompleteParams{Run: "r1", Attempt: j.Attempt, StartedAt: j.StartedAt,
				JobCompleteParams: broker.JobCompleteParams{JobLeaseParams: broker.JobLeaseParams{Queue: q, ID: j.ID, Token: j.LeaseToken}}})
			if err != nil {
				t.Fatalf("complete %s: %v", j.ID, err)
			}
		}
		complete(nil, a)
		complete(nil, fetch(1)[0])
		hook := fetch(1)[0]
		if hook.ID != "r1:ok" {
			t.Fatalf("fetched %s, want the success hook", hook.ID)
		}
		cb.docs.Store(0)
		cb.gets.Store(0)
		snap, run, err = s.LoadLive(ctx, q, "r1")
		if err != nil || run.State != broker.WorkflowSucceeded {
			t.Fatalf("load the succeeded run: %v, %v", run, err)
		}
		complete(snap, hook)
		if d, g := cb.docs.Load(), cb.gets.Load(); d != 1 || g != 0 {
			t.Errorf("the hook's read and completion read %d documents and %d jobs, want 1 and 0", d, g)
		}
		if j, err := b.JobGet(ctx, &broker.JobGetParams{Queue: q, ID: hook.ID}); err != nil || j.State != broker.StateCompleted {
			t.Fatalf("the hook's job: %+v, %v", j, err)
		}
	})
}
