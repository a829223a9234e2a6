package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/envelope"
	"github.com/aibos/worker/internal/runstore"
	"github.com/aibos/worker/internal/schedstore"
)

// RotateParams bounds one call of Client.RotateKeys.
type RotateParams struct {
	// Queues to rotate. Defaults to every queue the broker knows.
	Queues []string
	// BatchSize is how many jobs are listed per page; the cursor is saved
	// after each page. A page's jobs are re-sealed concurrently, up to 16
	// at a time. Defaults to 100.
	BatchSize int
	// MaxJobs, when > 0, stops the call once that many jobs (and runs)
	// were read, with
	// the cursor saved: the next call continues where this one stopped.
	// An admin endpoint bounds each request this way.
	MaxJobs int
}

// RotateResult says what a RotateKeys call did.
type RotateResult struct {
	Key       string `json:"key"`       // the key every value is now sealed under
	Read      int    `json:"read"`      // jobs and workflow runs read
	Rewritten int    `json:"rewritten"` // jobs with at least one value re-sealed
	// Runs counts workflow runs with at least one value re-sealed (input,
	// step outputs, errors); Schedules the cron schedules whose job
	// template was re-sealed.
	Runs      int `json:"runs"`
	Schedules int `json:"schedules"`
	Values    int `json:"values"` // values re-sealed (of jobs, runs and templates)
	// Unreadable lists jobs (queue/id), runs (queue/runs/id) and
	// schedules (schedules/name) holding a value that does not open
	// (altered, or under a key the ring lacks): left as they are.
	Unreadable []string `json:"unreadable"`
	// Done reports that a whole pass over every queue found no value left
	// to re-seal: every stored job is under Key. False when MaxJobs
	// stopped the call first.
	Done bool `json:"done"`
}

// ErrNoEncryptionKeys: RotateKeys was called on a client without keys.
var ErrNoEncryptionKeys = errors.New("the client has no encryption keys")

// rotation cursors are documents (broker.Committer) of this kind, one per
// queue, so that a rotation stopped at any point continues from its last
// saved page.
const (
	rotationKind = "keyrotation"
	rotationKey  = "cursor"
	// rotationPasses bounds the passes over a queue: jobs move between
	// states while workers run, so a pass may miss one that moved behind
	// it; the next pass finds it. A queue still changing after this many
	// is reported not Done.
	rotationPasses = 5
	// rewriteTries bounds the re-reads of a job that changed between read
	// and rewrite (it completed, failed or reported progress meanwhile).
	rewriteTries = 5
	// rewriteParallel bounds the jobs of a page re-sealed at once: enough
	// for SQLite's group commit to share a transaction among them, few
	// enough not to take a Redis client's whole connection pool.
	rewriteParallel = 16
)

// rotationStages are the stages of a queue's rotation: the jobs of each
// state, then the workflow runs, through each index that reaches them.
var rotationStages = func() []string {
	var s []string
	for _, st := range broker.States {
		s = append(s, string(st))
	}
	for _, index := range runstore.RewriteIndexes {
		s = append(s, runStage+index)
	}
	return s
}()

// runStage starts the stages that walk workflow runs.
const runStage = "runs:"

// rotationCursor is where a queue's rotation stands.
type rotationCursor struct {
	Key   string `json:"key"`   // the newest key when it started
	State string `json:"state"` // the stage: a job state, or runs: and an index
	// After is the cursor of the next page of a job state
	// (broker.JobListParams.After): unlike an offset, it is not shifted by
	// jobs that complete or are removed between pages, which a walk by
	// offset then skipped. Offset is the next page's offset in a stage of
	// workflow runs.
	After  string `json:"after,omitempty"`
	Offset int    `json:"offset"`
	// Dirty: this pass has re-sealed something, so another pass must
	// confirm nothing is left.
	Dirty bool `json:"dirty"`
}

// RotateKeys re-seals every stored value of every job (data, result,
// progress, last error, each attempt's error) that is sealed under an
// older key than the ring's newest, and seals the plain values of jobs
// the Encryption applies to (stored before it was turned on); likewise
// every workflow run's input, step outputs and errors (package workflow)
// and every cron schedule's job template (package schedule), each
// written back by compare-and-set, so a run that advanced or a schedule
// that ticked meanwhile is re-read, never overwritten. It runs
// beside working Managers: each job is rewritten with
// broker.JobRewriter, only if its values are still those read, so a job
// that finishes meanwhile is re-read, never overwritten; active jobs are
// rewritten too (their worker's lease is untouched). Progress is saved per
// queue after every page (broker.Committer documents), so a call that was
// stopped, killed or bounded by MaxJobs continues where it left off.
// Values that do not open are left alone and listed. A tenant-scoped
// client cannot rotate.
func (c *Client) RotateKeys(ctx context.Context, p RotateParams) (*RotateResult, error) {
	e := c.cfg.Encryption
	switch {
	case c.tenant != "":
		return nil, errors.New("rotate keys: a tenant-scoped client cannot rotate every tenant's jobs")
	case e == nil || e.Keys == nil:
		return nil, fmt.Errorf("rotate keys: %w", ErrNoEncryptionKeys)
	case p.BatchSize < 0 || p.MaxJobs < 0:
		return nil, fmt.Errorf("rotate keys: batch size %d and max jobs %d must not be negative", p.BatchSize, p.MaxJobs)
	}
	rw, ok := c.b.(broker.JobRewriter)
	cm, ok2 := c.b.(broker.Committer)
	if !ok || !ok2 {
		return nil, fmt.Errorf("rotate keys: broker %T cannot rewrite jobs in place (broker.JobRewriter, broker.Committer)", c.b)
	}
	queues := p.Queues
	if len(queues) == 0 {
		var err error
		if queues, err = c.b.QueueList(ctx); err != nil {
			return nil, fmt.Errorf("rotate keys: list queues: %w", err)
		}
	}
	runs, err := runstore.New(c.b)
	if err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	scheds, err := schedstore.New(c.b)
	if err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	r := &rotator{c: c, e: e, rw: rw, cm: cm, runs: runs, scheds: scheds, batch: cmp0(p.BatchSize, 100), budget: p.MaxJobs,
		res: &RotateResult{Key: e.Keys.Newest(), Done: true}}
	if err := r.schedules(ctx); err != nil {
		return r.res, fmt.Errorf("rotate keys: %w", err)
	}
	for _, q := range queues {
		done, err := r.queue(ctx, q)
		if err != nil {
			return r.res, fmt.Errorf("rotate keys of queue %q: %w", q, err)
		}
		if !done {
			r.res.Done = false
			if r.out() {
				break
			}
		}
	}
	if s, ok := c.b.(broker.Scrubber); ok && r.res.Done {
		// The old ciphertexts must not outlive the rotation in the
		// store's files.
		if err := s.Scrub(ctx); err != nil {
			return r.res, fmt.Errorf("rotate keys: %w", err)
		}
	}
	return r.res, nil
}

func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

type rotator struct {
	c      *Client
	e      *Encryption
	rw     broker.JobRewriter
	cm     broker.Committer
	runs   *runstore.Store
	scheds *schedstore.Store
	batch  int
	budget int // jobs left to read; 0 means no bound
	res    *RotateResult
}

// out reports that MaxJobs is used up.
func (r *rotator) out() bool { return r.budget > 0 && r.res.Read >= r.budget }

// queue rotates one queue from its saved cursor and reports whether a
// clean pass confirmed it done.
func (r *rotator) queue(ctx context.Context, q string) (bool, error) {
	cur, version, err := r.load(ctx, q)
	if err != nil {
		return false, err
	}
	for pass := 0; pass < rotationPasses; pass++ {
		for i := slices.Index(rotationStages, cur.State); i < len(rotationStages); i++ {
			cur.State = rotationStages[i]
			for {
				if r.out() {
					return false, r.save(ctx, q, cur, &version)
				}
				next, after, dirty, err := r.page(ctx, q, cur.State, cur.Offset, cur.After)
				if err != nil {
					return false, err
				}
				cur.Dirty = cur.Dirty || dirty
				if next < 0 {
					cur.Offset, cur.After = 0, ""
					break
				}
				cur.Offset, cur.After = next, after
				if err := r.save(ctx, q, cur, &version); err != nil {
					return false, err
				}
			}
		}
		if !cur.Dirty {
			// Done: the next rotation starts a pass of its own.
			return true, r.write(ctx, q, &broker.DocWrite{Kind: rotationKind, Key: rotationKey, Version: version, Delete: true})
		}
		cur = rotationCursor{Key: cur.Key, State: rotationStages[0]}
		if err := r.save(ctx, q, cur, &version); err != nil {
			return false, err
		}
	}
	return false, nil
}

// load reads q's cursor; one left by a rotation to another key starts
// over.
func (r *rotator) load(ctx context.Context, q string) (rotationCursor, int64, error) {
	fresh := rotationCursor{Key: r.e.Keys.Newest(), State: rotationStages[0]}
	d, err := r.cm.DocGet(ctx, q, rotationKind, rotationKey)
	if errors.Is(err, broker.ErrDocNotFound) {
		return fresh, 0, nil
	}
	if err != nil {
		return fresh, 0, fmt.Errorf("read rotation cursor: %w", err)
	}
	var cur rotationCursor
	if err := json.Unmarshal(d.Body, &cur); err != nil || !slices.Contains(rotationStages, cur.State) || cur.Key != fresh.Key {
		return fresh, d.Version, nil
	}
	return cur, d.Version, nil
}

// page rotates one page of stage (a job state, or runStage and an index)
// of queue q from offset (runs) or after cursor after (jobs), and returns
// where the next page starts (next -1 after the last) and whether it
// re-sealed anything.
func (r *rotator) page(ctx context.Context, q, stage string, offset int, after string) (next int, nextAfter string, dirty bool, err error) {
	if index, ok := strings.CutPrefix(stage, runStage); ok {
		read, next, wrote, err := r.runs.RewritePage(ctx, q, index, offset, r.batch, func(run *broker.WorkflowRun) (bool, error) {
			applies := len(run.Steps) > 0 && r.e.Applies(run.Queue, run.Steps[0].Job.Type)
			n, err := r.e.resealRun(run, applies)
			if err != nil {
				r.res.Unreadable = append(r.res.Unreadable, q+"/runs/"+run.ID)
				return false, nil
			}
			r.res.Values += n
			return n > 0, nil
		})
		r.res.Read += read
		r.res.Runs += wrote
		if err != nil {
			return -1, "", false, fmt.Errorf("rotate runs: %w", err)
		}
		return next, "", wrote > 0, nil
	}
	page, err := r.c.b.JobList(ctx, &broker.JobListParams{Queue: q, State: broker.State(stage), After: after, Limit: r.batch})
	if err != nil {
		return -1, "", false, fmt.Errorf("list %s jobs: %w", stage, err)
	}
	// A page's jobs are re-sealed at once, not one after another: each
	// rewrite is a write of its own, and one at a time they took a turn
	// each at the store's writer (SQLite: a synchronous transaction, so
	// an fsync, queued behind every maintenance round and fetch of the
	// Managers at work), so 10,000 jobs under -race on a loaded machine
	// took longer than 10 minutes. Together SQLite's group commit joins
	// them into a few transactions and Redis overlaps their round trips.
	outs := make([]jobOutcome, len(page.Jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rewriteParallel)
	for i, j := range page.Jobs {
		g.Go(func() (err error) {
			outs[i], err = r.job(gctx, j)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return -1, "", false, err
	}
	for _, o := range outs {
		if o.unreadable != "" {
			r.res.Unreadable = append(r.res.Unreadable, o.unreadable)
		}
		if o.values > 0 {
			dirty = true
			r.res.Rewritten++
			r.res.Values += o.values
		}
	}
	r.res.Read += len(page.Jobs)
	if page.Cursor == "" {
		return -1, "", dirty, nil
	}
	return 0, page.Cursor, dirty, nil
}

// schedules re-seals every cron schedule's job template sealed under an
// older key, and seals the plain templates of encrypted queues. Schedules
// are few: each call goes over all of them, skipping those done.
func (r *rotator) schedules(ctx context.Context) error {
	l, err := r.scheds.ScheduleList(ctx)
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	for _, sc := range l.Schedules {
		// The rewrite calls f again when its compare-and-set loses: what
		// f found is counted once, from its last call.
		unreadable := false
		wrote, err := r.scheds.ScheduleRewrite(ctx, sc.Name, func(cur *broker.Schedule) (bool, error) {
			p := &cur.Job
			b := envelope.Binding{Tenant: p.TenantID, Queue: p.Queue, Type: p.Type, JobID: schedstore.TemplateID(cur.Name), Field: fieldData}
			data, changed, err := r.e.resealJSON(p.Data, b, r.e.Applies(p.Queue, p.Type))
			if unreadable = err != nil; unreadable {
				return false, nil
			}
			if changed {
				p.Data = data
			}
			return changed, nil
		})
		if err != nil && !errors.Is(err, broker.ErrScheduleNotFound) {
			return fmt.Errorf("rotate schedule %q: %w", sc.Name, err)
		}
		switch {
		case err != nil:
		case unreadable:
			r.res.Unreadable = append(r.res.Unreadable, "schedules/"+sc.Name)
		case wrote:
			r.res.Schedules++
			r.res.Values++
		}
	}
	return nil
}

// save stores q's cursor at the version it was read at: a second rotation
// of the same queue running at once fails with ErrConflict.
func (r *rotator) save(ctx context.Context, q string, cur rotationCursor, version *int64) error {
	body, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("encode rotation cursor: %w", err)
	}
	if err := r.write(ctx, q, &broker.DocWrite{Kind: rotationKind, Key: rotationKey, Version: *version, Body: body}); err != nil {
		return err
	}
	*version++
	return nil
}

func (r *rotator) write(ctx context.Context, q string, w *broker.DocWrite) error {
	if w.Delete && w.Version == 0 {
		return nil // never saved: nothing to remove
	}
	if _, err := r.cm.Commit(ctx, &broker.CommitParams{Scope: q, Docs: []*broker.DocWrite{w}}); err != nil {
		return fmt.Errorf("save rotation cursor (is another rotation running?): %w", err)
	}
	return nil
}

// jobOutcome is what re-sealing one job did.
type jobOutcome struct {
	values     int    // values re-sealed
	unreadable string // queue/id when a value does not open
}

// job re-seals one job's values, re-reading it while it changes under
// the rewrite. It is safe to call from several goroutines: it changes
// nothing of r.
func (r *rotator) job(ctx context.Context, listed *Job) (jobOutcome, error) {
	for try := 0; try < rewriteTries; try++ {
		j, err := r.c.b.JobGet(ctx, &broker.JobGetParams{Queue: listed.Queue, ID: listed.ID})
		if errors.Is(err, broker.ErrNotFound) {
			return jobOutcome{}, nil // removed since it was listed: nothing to re-seal
		}
		if err != nil {
			return jobOutcome{}, fmt.Errorf("read job %s: %w", listed.ID, err)
		}
		p, n, err := r.e.rewriteOf(j)
		if err != nil {
			return jobOutcome{unreadable: j.Queue + "/" + j.ID}, nil
		}
		if n == 0 {
			return jobOutcome{}, nil
		}
		err = r.rw.JobRewrite(ctx, p)
		switch {
		case err == nil:
			return jobOutcome{values: n}, nil
		case errors.Is(err, broker.ErrNotFound):
			return jobOutcome{}, nil
		case !errors.Is(err, broker.ErrConflict):
			return jobOutcome{}, fmt.Errorf("rewrite job %s: %w", j.ID, err)
		}
	}
	return jobOutcome{}, fmt.Errorf("rewrite job %s: it changed under each of %d tries: %w", listed.ID, rewriteTries, broker.ErrConflict)
}

// rewriteOf returns the rewrite that re-seals job's values under the
// newest key, and how many values it changes. It fails if a sealed value
// does not open.
func (e *Encryption) rewriteOf(job *Job) (*broker.JobRewriteParams, int, error) {
	p := &broker.JobRewriteParams{Queue: job.Queue, ID: job.ID}
	applies := e.Applies(job.Queue, job.Type)
	n := 0
	var err error
	jsonField := func(raw json.RawMessage, field string) *broker.ValueRewrite {
		if err != nil {
			return nil
		}
		sealed, changed, e2 := e.resealJSON(raw, bindingOf(job, field), applies)
		if err = e2; !changed || err != nil {
			return nil
		}
		n++
		return &broker.ValueRewrite{Old: string(raw), New: string(sealed)}
	}
	textField := func(s string) *broker.ValueRewrite {
		if err != nil {
			return nil
		}
		sealed, changed, e2 := e.resealText(s, bindingOf(job, fieldError), applies)
		if err = e2; !changed || err != nil {
			return nil
		}
		n++
		return &broker.ValueRewrite{Old: s, New: sealed}
	}
	p.Data = jsonField(job.Data, fieldData)
	p.Result = jsonField(job.Result, fieldResult)
	p.Progress = jsonField(job.Progress, fieldProgress)
	p.LastError = textField(job.LastError)
	for i, a := range job.Attempts {
		if v := textField(a.Error); v != nil {
			if p.Attempts == nil {
				p.Attempts = map[int]*broker.ValueRewrite{}
			}
			p.Attempts[i] = v
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open job %s: %w", job.ID, err)
	}
	return p, n, nil
}
