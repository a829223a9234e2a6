package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
	"modernc.org/sqlite"
)

// insertJobSQL inserts one job: it takes newJob's arguments and then the
// job's fair_tag (insertTags.arg).
const insertJobSQL = `INSERT INTO jobs (id, queue, type, data, priority, max_attempts, tenant_id, company_id,
	headers, unique_key, timeout_ns, state, created_at, run_at, expires_at, delete_on_complete, fair_tag)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertSizes are the numbers of jobs the statements that insert a
// batch take (insertRowsSQL), largest first: a statement opens and closes
// its cursors on the table and each index once, and that, with the call
// into SQLite, cost more than the row itself. A batch is split into as few
// of them as add up to its size; all are compiled at Open, where a
// statement for the rest of the batch (40 jobs of 1,000) was compiled per
// batch (5% of JobInsertMany's CPU).
var insertSizes = []int{64, 16, 4, 1}

// insertRows is the most jobs one statement inserts.
var insertRows = insertSizes[0]

// insertSQLs maps each of insertSizes to its statement.
var insertSQLs = func() map[int]string {
	m := make(map[int]string, len(insertSizes))
	for _, n := range insertSizes {
		m[n] = insertRowsSQL(n)
	}
	return m
}()

// insertRowsSQL returns the statement that inserts n jobs of one queue
// at one time: the queue (?1) and the insert time (?2, created_at) are
// bound once for all rows, then each row takes jobArgs.batch's arguments
// and its fair_tag. Each value bound costs a call into SQLite, and a
// string a copy into memory SQLite owns.
func insertRowsSQL(n int) string {
	const row = `(?1, ?2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	return `INSERT INTO jobs (queue, created_at, id, type, data, priority, max_attempts, tenant_id, company_id,
	headers, unique_key, timeout_ns, state, run_at, expires_at, delete_on_complete, fair_tag)
	VALUES ` + strings.Repeat(row+", ", n-1) + row
}

// sqlWaiting counts a queue's scheduled and pending jobs, each state from
// its partial index (jobs_due, jobs_pending).
const sqlWaiting = `SELECT (SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 'scheduled')
	+ (SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 'pending')`

// JobInsert stores one job and returns once it is on disk. See
// broker.Broker.
func (b *Broker) JobInsert(ctx context.Context, p *broker.JobInsertParams) (*broker.Job, error) {
	if err := b.checkOpen("insert job"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return b.inserts.Do(ctx, p.Queue, p)
}

// maxCombined bounds the jobs of one combined insert transaction.
const maxCombined = 256

// insertEach writes validated jobs of one queue in one transaction, each
// on its own: a job refused (duplicate, queue full) is left out with its
// error and the others are written. It is how concurrent JobInsert calls
// share one commit.
func (b *Broker) insertEach(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, []error, error) {
	queue := ps[0].Queue
	jobs := make([]*broker.Job, len(ps))
	errs := make([]error, len(ps))
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		clear(jobs)
		clear(errs)
		fi, err := b.fairInserts(ctx, tx, queue)
		if err != nil {
			return err
		}
		stmt, err := b.stmt(ctx, tx, insertJobSQL)
		if err != nil {
			return err
		}
		waiting := -1 // scheduled + pending jobs, counted when a limit needs it
		ja := newJobArgs(queue, now)
		var args []any
		for i, p := range ps {
			if p.MaxQueueLength > 0 {
				if waiting < 0 {
					if err := tx.QueryRowContext(ctx, sqlWaiting,
						queue).Scan(&waiting); err != nil {
						return fmt.Errorf("count queue length: %w", err)
					}
				}
				if waiting+1 > p.MaxQueueLength {
					errs[i] = fmt.Errorf("%w: %d jobs waiting, the limit is %d", broker.ErrQueueFull, waiting, p.MaxQueueLength)
					continue
				}
			}
			j, a, err := ja.add(args[:0], p)
			if err != nil {
				errs[i] = err
				continue
			}
			tag, err := fi.arg(ctx, j)
			if err != nil {
				return err
			}
			args = append(a, tag)
			// A constraint violation aborts this statement only: the
			// transaction and the jobs before it stand.
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				if isConstraint(err) {
					errs[i] = duplicateOf(ctx, tx, p, err)
					continue
				}
				return fmt.Errorf("insert job %s: %w", p.ID, err)
			}
			fi.inserted()
			jobs[i] = j
			if waiting >= 0 && (j.State == broker.StatePending || j.State == broker.StateScheduled) {
				waiting++
			}
		}
		return fi.done(ctx, tx)
	})
	if err != nil {
		return nil, nil, b.fail(fmt.Sprintf("insert into queue %q", queue), err)
	}
	stored := make([]*broker.Job, 0, len(jobs))
	for i, j := range jobs {
		if j != nil {
			stored = append(stored, j)
		} else if errs[i] != nil {
			errs[i] = fmt.Errorf("insert into queue %q: %w", queue, errs[i])
		}
	}
	b.notifyInserted(stored)
	return jobs, errs, nil
}

// JobInsertMany stores jobs of one queue atomically in one transaction. See
// broker.Broker.
func (b *Broker) JobInsertMany(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if err := b.checkOpen("insert jobs"); err != nil {
		return nil, err
	}
	if err := broker.ValidateBatch(ps); err != nil {
		return nil, err
	}
	return b.insert(ctx, ps)
}

// insert writes validated jobs of one queue in one transaction.
func (b *Broker) insert(ctx context.Context, ps []*broker.JobInsertParams) ([]*broker.Job, error) {
	if err := duplicateInBatch(ps); err != nil {
		return nil, err
	}
	queue := ps[0].Queue
	var jobs []*broker.Job
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		if err := checkQueueLength(ctx, tx, ps); err != nil {
			return err
		}
		fi, err := b.fairInserts(ctx, tx, queue)
		if err != nil {
			return err
		}
		jobs = make([]*broker.Job, 0, len(ps))
		ja := newJobArgs(queue, now)
		ja.batch = true
		args := make([]any, 2, 2+min(len(ps), insertRows)*15)
		args[0], args[1] = ja.queue, ja.nowArg
		for rest := ps; len(rest) > 0; {
			n := insertSizes[slices.IndexFunc(insertSizes, func(n int) bool { return n <= len(rest) })]
			chunk := rest[:n]
			rest = rest[n:]
			args = args[:2]
			for _, p := range chunk {
				j, a, err := ja.add(args, p)
				if err != nil {
					return err
				}
				tag, err := fi.arg(ctx, j)
				if err != nil {
					return err
				}
				// All or nothing: a failed insert rolls the turns back too.
				fi.inserted()
				args = append(a, tag)
				jobs = append(jobs, j)
			}
			q := insertSQLs[n]
			if _, err := b.exec(ctx, tx, q, args...); err != nil {
				if isConstraint(err) {
					return duplicateAmong(ctx, tx, chunk, err)
				}
				return fmt.Errorf("insert jobs %s to %s: %w", chunk[0].ID, chunk[len(chunk)-1].ID, err)
			}
		}
		return fi.done(ctx, tx)
	})
	if err != nil {
		return nil, b.fail(fmt.Sprintf("insert into queue %q", queue), err)
	}
	b.notifyInserted(jobs)
	return jobs, nil
}

// newJob computes the stored job for p at broker time now (unix ms) and the
// arguments of insertJobSQL but the last (fair_tag).
func newJob(p *broker.JobInsertParams, now int64) (*broker.Job, []any, error) {
	return newJobArgs(p.Queue, now).add(nil, p)
}

// jobArgs builds the arguments of insertJobSQL or insertRowsSQL for the jobs one
// transaction inserts into one queue at broker time now. Putting a string
// or an int64 in an interface allocates, and the jobs of a batch share
// their queue, their insert time (also their run time when due at once),
// their state and mostly their type: each is boxed once per batch, not
// per job.
type jobArgs struct {
	now           int64
	queueName     string
	queue, nowArg any // queueName and now, boxed
	typeName      string
	typeArg       any // typeName, boxed
	// batch leaves the queue and the insert time out of a job's
	// arguments, for insertRowsSQL, which binds them once.
	batch bool
}

func newJobArgs(queue string, now int64) *jobArgs {
	return &jobArgs{now: now, queueName: queue, queue: queue, nowArg: now}
}

// pendingArg and scheduledArg are the states a job is inserted in, boxed.
var pendingArg, scheduledArg any = string(broker.StatePending), string(broker.StateScheduled)

// add computes the stored job for p and appends the arguments of
// insertJobSQL (insertRowsSQL's with batch) but the last (fair_tag) to args.
func (a *jobArgs) add(args []any, p *broker.JobInsertParams) (*broker.Job, []any, error) {
	now := a.now
	runAt := now
	switch {
	case !p.RunAt.IsZero():
		runAt = p.RunAt.UnixMilli()
	case p.Delay > 0:
		runAt = now + p.Delay.Milliseconds()
	}
	state, stateArg, runAtArg := broker.StatePending, pendingArg, a.nowArg
	if runAt > now {
		state, stateArg = broker.StateScheduled, scheduledArg
	}
	if runAt != now {
		runAtArg = runAt
	}
	var expires any
	j := &broker.Job{
		ID: p.ID, Queue: p.Queue, Type: p.Type, Priority: broker.PriorityOrDefault(p.Priority), MaxAttempts: p.MaxAttempts,
		TenantID: p.TenantID, CompanyID: p.CompanyID, UniqueKey: p.UniqueKey, Timeout: p.Timeout,
		DeleteOnComplete: p.DeleteOnComplete, State: state, CreatedAt: time.UnixMilli(now), RunAt: time.UnixMilli(runAt),
	}
	if len(p.Data) > 0 {
		j.Data = append(json.RawMessage(nil), p.Data...)
	}
	if p.TTL > 0 {
		e := runAt + p.TTL.Milliseconds()
		expires = e
		j.ExpiresAt = time.UnixMilli(e)
	}
	var headers any
	if len(p.Headers) > 0 {
		j.Headers = maps.Clone(p.Headers)
		h, err := json.Marshal(p.Headers)
		if err != nil {
			return nil, nil, fmt.Errorf("encode headers of job %s: %w", p.ID, err)
		}
		headers = string(h)
	}
	if a.typeArg == nil || p.Type != a.typeName {
		a.typeName, a.typeArg = p.Type, p.Type
	}
	queue := a.queue
	if p.Queue != a.queueName {
		queue = p.Queue
	}
	if a.batch {
		args = append(args, p.ID, a.typeArg, nullBlob(j.Data), j.Priority, p.MaxAttempts, p.TenantID, p.CompanyID,
			headers, nullText(p.UniqueKey), int64(p.Timeout), stateArg, runAtArg, expires, p.DeleteOnComplete)
		return j, args, nil
	}
	args = append(args, p.ID, queue, a.typeArg, nullBlob(j.Data), j.Priority, p.MaxAttempts, p.TenantID, p.CompanyID,
		headers, nullText(p.UniqueKey), int64(p.Timeout), stateArg, a.nowArg, runAtArg, expires, p.DeleteOnComplete)
	return j, args, nil
}

// duplicateInBatch reports a batch that repeats an ID, or a unique key
// within one tenant.
func duplicateInBatch(ps []*broker.JobInsertParams) error {
	if len(ps) < 2 {
		return nil
	}
	ids := make(map[string]struct{}, len(ps))
	keys := make(map[string]string)
	for _, p := range ps {
		if _, ok := ids[p.ID]; ok {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID}
		}
		ids[p.ID] = struct{}{}
		if p.UniqueKey == "" {
			continue
		}
		slot := broker.UniqueSlot(p.TenantID, p.UniqueKey)
		if first, ok := keys[slot]; ok {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: first, UniqueKey: p.UniqueKey}
		}
		keys[slot] = p.ID
	}
	return nil
}

// checkQueueLength returns ErrQueueFull if inserting ps would take the
// queue's scheduled + pending jobs past the smallest MaxQueueLength set.
func checkQueueLength(ctx context.Context, tx *sql.Tx, ps []*broker.JobInsertParams) error {
	limit := 0
	for _, p := range ps {
		if p.MaxQueueLength > 0 && (limit == 0 || p.MaxQueueLength < limit) {
			limit = p.MaxQueueLength
		}
	}
	if limit == 0 {
		return nil
	}
	// Counting stops at the first job past what still fits: a full count
	// walked every waiting job of the queue on each insert.
	room := limit - len(ps)
	if room < 0 {
		return fmt.Errorf("%w: %d jobs would pass the limit of %d", broker.ErrQueueFull, len(ps), limit)
	}
	var n int
	if err := tx.QueryRowContext(ctx, sqlWaitingUpTo, ps[0].Queue, room+1).Scan(&n); err != nil {
		return fmt.Errorf("count queue length: %w", err)
	}
	if n > room {
		return fmt.Errorf("%w: over %d jobs waiting, %d more would pass the limit of %d", broker.ErrQueueFull, room, len(ps), limit)
	}
	return nil
}

// sqlWaitingUpTo counts a queue's scheduled and pending jobs up to ?2 of
// each state, from their partial indexes (jobs_due, jobs_pending) alone.
const sqlWaitingUpTo = `SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 'scheduled' LIMIT ?2))
	+ (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = ?1 AND state = 'pending' LIMIT ?2))`

// isConstraint reports whether err is a SQLite constraint violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 19 // SQLITE_CONSTRAINT
}

// duplicateAmong builds the *DuplicateError of the first of ps that
// collides with a stored job, after a constraint violation of the
// statement that inserted them all (and was undone whole).
func duplicateAmong(ctx context.Context, tx *sql.Tx, ps []*broker.JobInsertParams, cause error) error {
	for _, p := range ps {
		err := duplicateOf(ctx, tx, p, cause)
		if de := (*broker.DuplicateError)(nil); errors.As(err, &de) {
			return err
		}
		if !errors.Is(err, cause) { // the look-up failed
			return err
		}
	}
	return fmt.Errorf("insert jobs %s to %s: %w", ps[0].ID, ps[len(ps)-1].ID, cause)
}

// duplicateOf builds the *DuplicateError for p after a constraint violation.
func duplicateOf(ctx context.Context, tx *sql.Tx, p *broker.JobInsertParams, cause error) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE queue = ? AND id = ?`, p.Queue, p.ID).Scan(&one)
	if err == nil {
		return &broker.DuplicateError{Queue: p.Queue, ExistingID: p.ID}
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("look up duplicate of job %s: %w", p.ID, err)
	}
	if p.UniqueKey != "" {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE queue = ? AND tenant_id = ? AND unique_key = ?
			AND state IN ('scheduled', 'pending', 'active')`, p.Queue, p.TenantID, p.UniqueKey).Scan(&id)
		if err == nil {
			return &broker.DuplicateError{Queue: p.Queue, ExistingID: id, UniqueKey: p.UniqueKey}
		}
	}
	return fmt.Errorf("insert job %s: %w", p.ID, cause)
}
