package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aibos/worker/broker"
)

// scoped returns the condition that selects one job of a queue within a
// tenant scope, and its arguments: id, queue, then the tenant when scoped.
// A scoped condition never matches a job with no tenant: the scope is not
// empty.
func scoped(queue, id, tenant string) (string, []any) {
	if tenant == "" {
		return `id = ? AND queue = ?`, []any{id, queue}
	}
	return `id = ? AND queue = ? AND tenant_id = ?`, []any{id, queue, tenant}
}

// JobGet returns one job. See broker.Broker.
func (b *Broker) JobGet(ctx context.Context, p *broker.JobGetParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("get job %s in queue %q", p.ID, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	where, args := scoped(p.Queue, p.ID, p.TenantID)
	row := b.read.QueryRowContext(ctx, `SELECT `+jobColumns+`, `+attemptsRead+` FROM jobs WHERE `+where, args...)
	var hist sql.NullString
	j, _, err := scanJob(withHistory{row, &hist})
	if err == nil {
		err = decodeHistory(j, hist)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrNotFound)
	}
	if err != nil {
		return nil, b.fail(op, err)
	}
	return j, nil
}

// listOrder is the ORDER BY of JobList per state.
func listOrder(s broker.State) string {
	switch s {
	case broker.StatePending:
		return "priority, seq"
	case broker.StateScheduled:
		return "run_at, seq"
	case broker.StateActive:
		return "lease_until, seq"
	}
	return "finished_at DESC, seq DESC"
}

// JobList lists one page of a queue's jobs in one state. See broker.Broker.
func (b *Broker) JobList(ctx context.Context, p *broker.JobListParams) (*broker.JobListResult, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("list %s jobs of queue %q", p.State, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	q, args, err := listQuery(p)
	if err != nil {
		return nil, err
	}
	args = append(args, limit+1, p.Offset)
	rows, err := b.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	res := &broker.JobListResult{Jobs: []*broker.Job{}, NextOffset: -1}
	var lastSeq int64
	for rows.Next() {
		j, seq, err := scanJob(rows)
		if err != nil {
			return nil, b.fail(op, err)
		}
		if len(res.Jobs) == limit {
			res.NextOffset = p.Offset + limit
			res.Cursor = listCursor(p.State, res.Jobs[limit-1], lastSeq)
			break
		}
		res.Jobs = append(res.Jobs, j)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	return res, nil
}

// listKey returns the first column of listOrder's order of state s.
func listKey(s broker.State) string {
	k, _, _ := strings.Cut(listOrder(s), " ")
	return strings.TrimSuffix(k, ",")
}

// listCursor is the cursor (JobListParams.After) of a page of state s
// ending with job j of seq seq: the values of listOrder's columns, seq
// last, which is unique.
func listCursor(s broker.State, j *broker.Job, seq int64) string {
	var k int64
	switch s {
	case broker.StatePending:
		k = int64(j.Priority)
	case broker.StateScheduled:
		k = j.RunAt.UnixMilli()
	case broker.StateActive:
		k = j.LeaseUntil.UnixMilli()
	default:
		k = j.FinishedAt.UnixMilli()
	}
	return strconv.FormatInt(k, 10) + " " + strconv.FormatInt(seq, 10)
}

// parseCursor reads a listCursor back.
func parseCursor(after string) (k, seq int64, err error) {
	a, b, ok := strings.Cut(after, " ")
	k, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, broker.BadCursorError(after)
	}
	return k, seq, nil
}

// listQuery returns JobList's query (without its LIMIT and OFFSET
// arguments). The state, validated, is written into the query, not bound:
// SQLite uses a partial index only when the query repeats its condition. A
// tenant listing repeats the tenant indexes' condition too (see migration
// 0008), so that it reads only the tenant's entries, in order. A cursor
// (After) becomes a row-value condition on the order's columns, which the
// same indexes serve.
func listQuery(p *broker.JobListParams) (string, []any, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE queue = ? AND state = '` + string(p.State) + `'`
	args := []any{p.Queue}
	if p.TenantID != "" {
		q += ` AND tenant_id = ? AND tenant_id <> ''`
		args = append(args, p.TenantID)
	}
	if p.Type != "" {
		q += ` AND type = ?`
		args = append(args, p.Type)
	}
	if p.State.Finished() {
		// Always true of a finished job; saying it lets SQLite use the
		// partial indexes of finished jobs.
		q += ` AND finished_at IS NOT NULL`
	}
	if p.After != "" {
		k, seq, err := parseCursor(p.After)
		if err != nil {
			return "", nil, err
		}
		cmp := ">"
		if p.State.Finished() {
			cmp = "<" // newest first
		}
		q += ` AND (` + listKey(p.State) + `, seq) ` + cmp + ` (?, ?)`
		args = append(args, k, seq)
	}
	return q + ` ORDER BY ` + listOrder(p.State) + ` LIMIT ? OFFSET ?`, args, nil
}

// wrongState explains why a statement guarded by a job's state changed no
// row: ErrNotFound if the job does not exist within the tenant scope, else
// ErrWrongState.
func wrongState(ctx context.Context, tx *sql.Tx, queue, id, tenant string) error {
	var state string
	where, args := scoped(queue, id, tenant)
	err := tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE `+where, args...).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return broker.ErrNotFound
	case err != nil:
		return fmt.Errorf("look up job: %w", err)
	}
	return fmt.Errorf("%w: job is %s", broker.ErrWrongState, state)
}

// JobCancel cancels an unfinished job and revokes its lease. See
// broker.Broker.
func (b *Broker) JobCancel(ctx context.Context, p *broker.JobCancelParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("cancel job %s in queue %q", p.ID, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	where, args := scoped(p.Queue, p.ID, p.TenantID)
	var j *broker.Job
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		var err error
		// ?1 first: the condition's own placeholders then number from 2.
		j, _, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = ?1,
			lease_until = NULL, `+cancelAttempts+`
			WHERE `+where+` AND state IN ('scheduled', 'pending', 'active')
			RETURNING `+jobColumns, append([]any{now}, args...)...))
		if errors.Is(err, sql.ErrNoRows) {
			return wrongState(ctx, tx, p.Queue, p.ID, p.TenantID)
		}
		return err
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return j, nil
}

// JobRetry moves a dead, cancelled or expired job back to pending. See
// broker.Broker.
func (b *Broker) JobRetry(ctx context.Context, p *broker.JobRetryParams) (*broker.Job, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("retry job %s in queue %q", p.ID, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	queue, id := p.Queue, p.ID
	where, args := scoped(queue, id, p.TenantID)
	var j *broker.Job
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		var state, tenant string
		var key sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT state, tenant_id, unique_key FROM jobs WHERE `+where, args...).Scan(&state, &tenant, &key)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return broker.ErrNotFound
		case err != nil:
			return fmt.Errorf("look up job: %w", err)
		}
		switch broker.State(state) {
		case broker.StateDead, broker.StateCancelled, broker.StateExpired:
		default:
			return fmt.Errorf("%w: job is %s", broker.ErrWrongState, state)
		}
		if key.Valid {
			// Keys are held per tenant: the holder, if any, is the job's
			// own tenant's, which its scope may see.
			var holder string
			err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE queue = ? AND tenant_id = ? AND unique_key = ?
				AND state IN ('scheduled', 'pending', 'active')`, queue, tenant, key.String).Scan(&holder)
			if err == nil {
				return &broker.DuplicateError{Queue: queue, ExistingID: holder, UniqueKey: key.String}
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("check unique key: %w", err)
			}
		}
		// The TTL is cleared: an operator retrying an expired job wants it run.
		j, _, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'pending', attempt = 0, `+sqlRetag+`,
			run_at = ?, expires_at = NULL, finished_at = NULL, lease_until = NULL, worker_id = ''
			WHERE id = ? AND queue = ? RETURNING `+jobColumns, now, id, queue))
		return err
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	b.waker().Notify(queue, 0) // pending again: wake an idle worker
	return j, nil
}

// JobDelete removes a job that is not active. See broker.Broker.
func (b *Broker) JobDelete(ctx context.Context, p *broker.JobDeleteParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	op := fmt.Sprintf("delete job %s in queue %q", p.ID, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return err
	}
	where, args := scoped(p.Queue, p.ID, p.TenantID)
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE `+where+` AND state <> 'active'`, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return wrongState(ctx, tx, p.Queue, p.ID, p.TenantID)
		}
		return nil
	})
	if err != nil {
		return b.fail(op, err)
	}
	return nil
}
