package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.WorkflowStore = (*Broker)(nil)

// wfRun is a run loaded inside a transaction, with the bookkeeping columns
// the state machine needs.
type wfRun struct {
	broker.WorkflowRun
	completions int
	chain       []string
	chainNext   int
}

// querier is a *sql.Tx or *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// jobText encodes a job template as JSON text, or NULL when there is none.
func jobText(j *broker.WorkflowJob) (any, error) {
	if j == nil {
		return nil, nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeJob(s sql.NullString) (*broker.WorkflowJob, error) {
	if !s.Valid || s.String == "" || s.String == "null" {
		return nil, nil
	}
	var j broker.WorkflowJob
	if err := json.Unmarshal([]byte(s.String), &j); err != nil {
		return nil, fmt.Errorf("decode job template: %w", err)
	}
	return &j, nil
}

// WorkflowRunCreate stores a run and inserts its root steps' jobs in one
// transaction; see broker.WorkflowStore.
func (b *Broker) WorkflowRunCreate(ctx context.Context, p *broker.WorkflowRunCreateParams) (*broker.WorkflowRun, bool, error) {
	const op = "create workflow run"
	if err := b.checkOpen(op); err != nil {
		return nil, false, err
	}
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	var existing string
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		if p.IdempotencyKey != "" {
			err := tx.QueryRowContext(ctx, `SELECT id FROM workflow_runs WHERE queue = ? AND idempotency_key = ?`,
				p.Queue, p.IdempotencyKey).Scan(&existing)
			if err == nil {
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("look up idempotency key: %w", err)
			}
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM workflow_runs WHERE queue = ? AND id = ?`, p.Queue, p.ID).Scan(&one)
		if err == nil {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up run: %w", err)
		}
		if err := templatesFree(ctx, tx, p); err != nil {
			return err
		}
		onOK, err := jobText(p.OnSuccess)
		if err != nil {
			return err
		}
		onFail, err := jobText(p.OnFailure)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workflow_runs (queue, id, workflow, tenant_id, company_id,
			idempotency_key, state, input, created_at, on_success, on_failure) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)`,
			p.Queue, p.ID, p.Workflow, p.TenantID, p.CompanyID, nullText(p.IdempotencyKey), nullBlob(p.Input), now,
			onOK, onFail); err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO queues (name) VALUES (?)`, p.Queue); err != nil {
			return fmt.Errorf("register queue: %w", err)
		}
		r := &wfRun{WorkflowRun: broker.WorkflowRun{ID: p.ID, Queue: p.Queue, TenantID: p.TenantID, CompanyID: p.CompanyID}}
		for i, s := range p.Steps {
			deps, _ := json.Marshal(append([]string{}, s.DependsOn...))
			job, _ := json.Marshal(s.Job)
			comp, err := jobText(s.Compensation)
			if err != nil {
				return err
			}
			state := broker.StepWaiting
			if len(s.DependsOn) == 0 {
				state = broker.StepPending
				if err := insertTemplate(ctx, tx, r, &s.Job, now); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO workflow_steps (queue, run_id, position, name, depends_on,
				job, compensation, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				p.Queue, p.ID, i, s.Name, string(deps), string(job), comp, string(state)); err != nil {
				return fmt.Errorf("insert step %q: %w", s.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, b.fail(fmt.Sprintf("create run %s of workflow %q in queue %q", p.ID, p.Workflow, p.Queue), err)
	}
	if existing != "" {
		run, err := b.WorkflowRunGet(ctx, p.Queue, existing)
		return run, false, err
	}
	run, err := b.WorkflowRunGet(ctx, p.Queue, p.ID)
	return run, true, err
}

// templatesFree returns a *DuplicateError naming the first job template of
// p (steps in order, each with its compensation, then the hooks) whose id a
// stored job already has: such a run could neither insert that job later
// nor be removed whole by retention.
func templatesFree(ctx context.Context, tx *sql.Tx, p *broker.WorkflowRunCreateParams) error {
	var tpls []*broker.WorkflowJob
	for i := range p.Steps {
		tpls = append(tpls, &p.Steps[i].Job, p.Steps[i].Compensation)
	}
	tpls = append(tpls, p.OnSuccess, p.OnFailure)
	for _, t := range tpls {
		if t == nil {
			continue
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE queue = ? AND id = ?`, p.Queue, t.ID).Scan(&one)
		if err == nil {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: t.ID}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up job %s: %w", t.ID, err)
		}
	}
	return nil
}

// insertTemplate inserts a pending job from a template with the run's
// tenant and company.
func insertTemplate(ctx context.Context, tx *sql.Tx, r *wfRun, t *broker.WorkflowJob, now int64) error {
	p := &broker.JobInsertParams{ID: t.ID, Queue: r.Queue, Type: t.Type, Data: t.Data, Priority: t.Priority,
		MaxAttempts: t.MaxAttempts, TenantID: r.TenantID, CompanyID: r.CompanyID, Timeout: t.Timeout}
	_, args, err := newJob(p, now)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, insertJobSQL, args...); err != nil {
		if isConstraint(err) {
			return duplicateOf(ctx, tx, p, err)
		}
		return fmt.Errorf("insert job %s: %w", t.ID, err)
	}
	return nil
}

// loadRun reads a run and its steps. ErrNotFound if absent.
func loadRun(ctx context.Context, q querier, queue, id string) (*wfRun, error) {
	r := &wfRun{}
	var (
		idem, onOK, onFail, chain sql.NullString
		input                     []byte
		created                   int64
		finished                  sql.NullInt64
		state                     string
	)
	err := q.QueryRowContext(ctx, `SELECT id, workflow, tenant_id, company_id, idempotency_key, state, input,
		error, failed_step, created_at, finished_at, on_success, on_failure, completions, chain, chain_next
		FROM workflow_runs WHERE queue = ? AND id = ?`, queue, id).Scan(&r.ID, &r.Workflow, &r.TenantID, &r.CompanyID,
		&idem, &state, &input, &r.Error, &r.FailedStep, &created, &finished, &onOK, &onFail, &r.completions, &chain, &r.chainNext)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %s in queue %q: %w", id, queue, broker.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", id, err)
	}
	r.Queue, r.IdempotencyKey, r.State, r.Input = queue, idem.String, broker.WorkflowState(state), raw(input)
	r.CreatedAt, r.FinishedAt = time.UnixMilli(created), optTime(finished)
	if r.OnSuccess, err = decodeJob(onOK); err != nil {
		return nil, err
	}
	if r.OnFailure, err = decodeJob(onFail); err != nil {
		return nil, err
	}
	if chain.Valid {
		if err := json.Unmarshal([]byte(chain.String), &r.chain); err != nil {
			return nil, fmt.Errorf("decode compensation chain of run %s: %w", id, err)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT name, depends_on, job, compensation, state, attempts, output, error,
		started_at, finished_at, completed_seq, comp_state FROM workflow_steps WHERE queue = ? AND run_id = ?
		ORDER BY position`, queue, id)
	if err != nil {
		return nil, fmt.Errorf("read steps of run %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		s := &broker.WorkflowStep{}
		var (
			deps, job, sstate, cstate string
			comp                      sql.NullString
			output                    []byte
			started, fin              sql.NullInt64
		)
		if err := rows.Scan(&s.Name, &deps, &job, &comp, &sstate, &s.Attempts, &output, &s.Error,
			&started, &fin, &s.CompletedSeq, &cstate); err != nil {
			return nil, fmt.Errorf("read step of run %s: %w", id, err)
		}
		if err := json.Unmarshal([]byte(deps), &s.DependsOn); err != nil {
			return nil, fmt.Errorf("decode dependencies of step %q: %w", s.Name, err)
		}
		if len(s.DependsOn) == 0 {
			s.DependsOn = nil
		}
		if err := json.Unmarshal([]byte(job), &s.Job); err != nil {
			return nil, fmt.Errorf("decode job of step %q: %w", s.Name, err)
		}
		if s.Compensation, err = decodeJob(comp); err != nil {
			return nil, err
		}
		s.State, s.CompensationState = broker.StepState(sstate), broker.CompensationState(cstate)
		s.Output, s.StartedAt, s.FinishedAt = raw(output), optTime(started), optTime(fin)
		r.Steps = append(r.Steps, s)
	}
	return r, rows.Err()
}

// saveRun writes back a run's mutable columns and its steps.
func saveRun(ctx context.Context, tx *sql.Tx, r *wfRun) error {
	var chain any
	if len(r.chain) > 0 {
		c, _ := json.Marshal(r.chain)
		chain = string(c)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE workflow_runs SET state = ?, error = ?, failed_step = ?, finished_at = ?,
		completions = ?, chain = ?, chain_next = ? WHERE queue = ? AND id = ?`,
		string(r.State), r.Error, r.FailedStep, nullMs(r.FinishedAt), r.completions, chain, r.chainNext, r.Queue, r.ID); err != nil {
		return fmt.Errorf("update run %s: %w", r.ID, err)
	}
	for i, s := range r.Steps {
		if _, err := tx.ExecContext(ctx, `UPDATE workflow_steps SET state = ?, attempts = ?, output = ?, error = ?,
			started_at = ?, finished_at = ?, completed_seq = ?, comp_state = ? WHERE queue = ? AND run_id = ? AND position = ?`,
			string(s.State), s.Attempts, nullBlob(s.Output), s.Error, nullMs(s.StartedAt), nullMs(s.FinishedAt),
			s.CompletedSeq, string(s.CompensationState), r.Queue, r.ID, i); err != nil {
			return fmt.Errorf("update step %q of run %s: %w", s.Name, r.ID, err)
		}
	}
	return nil
}

// findJob names the part of run r that job id carries: "step" or "comp"
// (with its step), "ok" or "fail" (a hook), or "".
func findJob(r *wfRun, id string) (string, *broker.WorkflowStep) {
	for _, s := range r.Steps {
		if s.Job.ID == id {
			return "step", s
		}
		if s.Compensation != nil && s.Compensation.ID == id {
			return "comp", s
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

// recordJob copies the attempt count and start time of a step's job.
func recordJob(ctx context.Context, tx *sql.Tx, r *wfRun, s *broker.WorkflowStep) error {
	var started sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT attempt, started_at FROM jobs WHERE queue = ? AND id = ?`,
		r.Queue, s.Job.ID).Scan(&s.Attempts, &started)
	if err != nil {
		return fmt.Errorf("read job of step %q: %w", s.Name, err)
	}
	s.StartedAt = optTime(started)
	return nil
}

// cancelOpen cancels every unfinished step of r and the jobs carrying them.
func cancelOpen(ctx context.Context, tx *sql.Tx, r *wfRun, now int64) error {
	for _, s := range r.Steps {
		switch s.State {
		case broker.StepPending:
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_until = NULL
				WHERE queue = ? AND id = ? AND state IN ('scheduled', 'pending', 'active')`, now, r.Queue, s.Job.ID); err != nil {
				return fmt.Errorf("cancel job of step %q: %w", s.Name, err)
			}
			s.State, s.FinishedAt = broker.StepCancelled, time.UnixMilli(now)
		case broker.StepWaiting:
			s.State = broker.StepCancelled
		}
	}
	return nil
}

// advance starts the next compensation of a failed run, or its failure hook
// once every compensation has finished.
func advance(ctx context.Context, tx *sql.Tx, r *wfRun, now int64) error {
	r.chainNext++
	if r.chainNext <= len(r.chain) {
		for _, s := range r.Steps {
			if s.Name == r.chain[r.chainNext-1] {
				s.CompensationState = broker.CompensationPending
				return insertTemplate(ctx, tx, r, s.Compensation, now)
			}
		}
		return nil
	}
	if r.chainNext == len(r.chain)+1 && r.OnFailure != nil {
		return insertTemplate(ctx, tx, r, r.OnFailure, now)
	}
	return nil
}

// failRun fails r because step s died with msg: open steps are cancelled
// and compensations start, most recently completed step first.
func failRun(ctx context.Context, tx *sql.Tx, r *wfRun, s *broker.WorkflowStep, msg string, now int64) error {
	if err := cancelOpen(ctx, tx, r, now); err != nil {
		return err
	}
	r.State, r.Error, r.FailedStep, r.FinishedAt = broker.WorkflowFailed, msg, s.Name, time.UnixMilli(now)
	var done []*broker.WorkflowStep
	for _, d := range r.Steps {
		if d.Compensation != nil && d.State == broker.StepCompleted {
			done = append(done, d)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].CompletedSeq > done[j].CompletedSeq })
	r.chain = r.chain[:0]
	for _, d := range done {
		r.chain = append(r.chain, d.Name)
	}
	r.chainNext = 0
	return advance(ctx, tx, r, now)
}

// WorkflowJobComplete completes a job of a run and advances the run in one
// transaction; see broker.WorkflowStore.
func (b *Broker) WorkflowJobComplete(ctx context.Context, p *broker.WorkflowJobCompleteParams) error {
	const op = "complete workflow job"
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("%s: %w: params are nil", op, broker.ErrInvalidJob)
	}
	if len(p.Result) > 0 && !json.Valid(p.Result) {
		return fmt.Errorf("%s %s: %w: result is not valid JSON", op, p.ID, broker.ErrInvalidJob)
	}
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := loadRun(ctx, tx, p.Queue, p.Run)
		if err != nil {
			return err
		}
		kind, s := findJob(r, p.ID)
		if kind == "" {
			return fmt.Errorf("job %s is not part of run %s: %w", p.ID, p.Run, broker.ErrNotFound)
		}
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'completed', finished_at = ?, result = ?, lease_until = NULL
			WHERE id = ? AND queue = ? AND state = 'active' AND lease_token = ?`, now, nullBlob(p.Result), p.ID, p.Queue, p.Token)
		if err != nil {
			return fmt.Errorf("complete job %s: %w", p.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return wfLeaseMiss(ctx, tx, &p.JobLeaseParams)
		}
		switch {
		case kind == "step" && r.State == broker.WorkflowRunning && s.State == broker.StepPending:
			if err := completeStep(ctx, tx, r, s, p.Result, now); err != nil {
				return err
			}
		case kind == "comp" && s.CompensationState == broker.CompensationPending:
			s.CompensationState = broker.CompensationCompleted
			if err := advance(ctx, tx, r, now); err != nil {
				return err
			}
		default:
			return nil
		}
		return saveRun(ctx, tx, r)
	})
	if err != nil {
		return b.fail(fmt.Sprintf("%s %s of run %s in queue %q", op, p.ID, p.Run, p.Queue), err)
	}
	return nil
}

// completeStep records step s's output, inserts the jobs of the steps it
// unblocks, and succeeds the run after its last step.
func completeStep(ctx context.Context, tx *sql.Tx, r *wfRun, s *broker.WorkflowStep, out json.RawMessage, now int64) error {
	if err := recordJob(ctx, tx, r, s); err != nil {
		return err
	}
	r.completions++
	s.State, s.Output, s.Error, s.FinishedAt, s.CompletedSeq = broker.StepCompleted, out, "", time.UnixMilli(now), r.completions
	state := make(map[string]broker.StepState, len(r.Steps))
	for _, w := range r.Steps {
		state[w.Name] = w.State
	}
	all := true
	for _, w := range r.Steps {
		if w.State == broker.StepWaiting {
			ready := true
			for _, d := range w.DependsOn {
				ready = ready && state[d] == broker.StepCompleted
			}
			if ready {
				if err := insertTemplate(ctx, tx, r, &w.Job, now); err != nil {
					return err
				}
				w.State = broker.StepPending
			}
		}
		all = all && w.State == broker.StepCompleted
	}
	if all {
		r.State, r.FinishedAt = broker.WorkflowSucceeded, time.UnixMilli(now)
		if r.OnSuccess != nil {
			return insertTemplate(ctx, tx, r, r.OnSuccess, now)
		}
	}
	return nil
}

// WorkflowJobFail records a failed attempt of a job of a run, failing the
// run when a step's job dies, in one transaction; see broker.WorkflowStore.
func (b *Broker) WorkflowJobFail(ctx context.Context, p *broker.WorkflowJobFailParams) (broker.State, error) {
	const op = "fail workflow job"
	if err := b.checkOpen(op); err != nil {
		return "", err
	}
	if p == nil {
		return "", fmt.Errorf("%s: %w: params are nil", op, broker.ErrInvalidJob)
	}
	if p.RetryDelay < 0 || p.MaxAttempts < 0 {
		return "", fmt.Errorf("%s %s: %w: negative retry delay or max attempts", op, p.ID, broker.ErrInvalidJob)
	}
	var state broker.State
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := loadRun(ctx, tx, p.Queue, p.Run)
		if err != nil {
			return err
		}
		kind, s := findJob(r, p.ID)
		if kind == "" {
			return fmt.Errorf("job %s is not part of run %s: %w", p.ID, p.Run, broker.ErrNotFound)
		}
		st, err := failJob(ctx, tx, &p.JobFailParams, now)
		if errors.Is(err, sql.ErrNoRows) {
			return wfLeaseMiss(ctx, tx, &p.JobLeaseParams)
		}
		if err != nil {
			return fmt.Errorf("fail job %s: %w", p.ID, err)
		}
		state = broker.State(st)
		switch {
		case kind == "step" && r.State == broker.WorkflowRunning && s.State == broker.StepPending:
			if err := recordJob(ctx, tx, r, s); err != nil {
				return err
			}
			s.Error = p.Error
			if state == broker.StateDead {
				s.State, s.FinishedAt = broker.StepFailed, time.UnixMilli(now)
				if err := failRun(ctx, tx, r, s, p.Error, now); err != nil {
					return err
				}
			}
		case kind == "comp" && state == broker.StateDead && s.CompensationState == broker.CompensationPending:
			s.CompensationState = broker.CompensationFailed
			if err := advance(ctx, tx, r, now); err != nil {
				return err
			}
		default:
			return nil
		}
		return saveRun(ctx, tx, r)
	})
	if err != nil {
		return "", b.fail(fmt.Sprintf("%s %s of run %s in queue %q", op, p.ID, p.Run, p.Queue), err)
	}
	return state, nil
}

// WorkflowRunCancel cancels a running run in one transaction; see
// broker.WorkflowStore.
func (b *Broker) WorkflowRunCancel(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	op := fmt.Sprintf("cancel run %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		r, err := loadRun(ctx, tx, queue, id)
		if err != nil {
			return err
		}
		if r.State != broker.WorkflowRunning {
			return fmt.Errorf("run is %s: %w", r.State, broker.ErrWrongState)
		}
		if err := cancelOpen(ctx, tx, r, now); err != nil {
			return err
		}
		r.State, r.FinishedAt = broker.WorkflowCancelled, time.UnixMilli(now)
		return saveRun(ctx, tx, r)
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return b.WorkflowRunGet(ctx, queue, id)
}

// WorkflowRunGet reads a run, overlaying the live state of its enqueued
// steps' jobs, in one read transaction; see broker.WorkflowStore.
func (b *Broker) WorkflowRunGet(ctx context.Context, queue, id string) (*broker.WorkflowRun, error) {
	op := fmt.Sprintf("get run %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	tx, err := b.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer tx.Rollback()
	run, err := getRun(ctx, tx, queue, id)
	if err != nil {
		return nil, b.fail(op, err)
	}
	return run, nil
}

func getRun(ctx context.Context, tx *sql.Tx, queue, id string) (*broker.WorkflowRun, error) {
	r, err := loadRun(ctx, tx, queue, id)
	if err != nil {
		return nil, err
	}
	for _, s := range r.Steps {
		if s.State != broker.StepPending {
			continue
		}
		var (
			js      string
			attempt int
			started sql.NullInt64
			lastErr string
		)
		err := tx.QueryRowContext(ctx, `SELECT state, attempt, started_at, last_error FROM jobs WHERE queue = ? AND id = ?`,
			queue, s.Job.ID).Scan(&js, &attempt, &started, &lastErr)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read job of step %q: %w", s.Name, err)
		}
		if js == string(broker.StateActive) {
			s.State = broker.StepRunning
		}
		s.Attempts = max(s.Attempts, attempt)
		if started.Valid {
			s.StartedAt = optTime(started)
		}
		if s.Error == "" {
			s.Error = lastErr
		}
	}
	return &r.WorkflowRun, nil
}

// WorkflowRunList lists a workflow's runs newest first; see
// broker.WorkflowStore.
func (b *Broker) WorkflowRunList(ctx context.Context, p *broker.WorkflowRunListParams) (*broker.WorkflowRunListResult, error) {
	const op = "list workflow runs"
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%s: %w: params are nil", op, broker.ErrInvalidJob)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	tx, err := b.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM workflow_runs WHERE queue = ? AND workflow = ?
		AND (? = '' OR state = ?) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`,
		p.Queue, p.Workflow, string(p.State), string(p.State), limit+1, p.Offset)
	if err != nil {
		return nil, b.fail(op, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, b.fail(op, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	res := &broker.WorkflowRunListResult{NextOffset: -1}
	if len(ids) > limit {
		ids, res.NextOffset = ids[:limit], p.Offset+limit
	}
	for _, id := range ids {
		run, err := getRun(ctx, tx, p.Queue, id)
		if err != nil {
			return nil, b.fail(op, err)
		}
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

// wfLeaseMiss explains why a lease-guarded update of a run's job changed no
// row: ErrNotFound if the job does not exist, else ErrLeaseLost.
func wfLeaseMiss(ctx context.Context, tx *sql.Tx, p *broker.JobLeaseParams) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE queue = ? AND id = ?`, p.Queue, p.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("job %s in queue %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	case err != nil:
		return fmt.Errorf("look up job %s: %w", p.ID, err)
	}
	return fmt.Errorf("job %s in queue %q, token %d: %w", p.ID, p.Queue, p.Token, broker.ErrLeaseLost)
}
