package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// JobGet returns one job. See broker.Broker.
func (b *Broker) JobGet(ctx context.Context, queue, id string) (*broker.Job, error) {
	op := fmt.Sprintf("get job %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	row := b.read.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND queue = ?`, id, queue)
	j, _, err := scanJob(row)
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
		return "priority DESC, seq"
	case broker.StateScheduled:
		return "run_at, seq"
	case broker.StateActive:
		return "lease_until, seq"
	}
	return "finished_at DESC, seq DESC"
}

// JobList lists one page of a queue's jobs in one state. See broker.Broker.
func (b *Broker) JobList(ctx context.Context, p *broker.JobListParams) (*broker.JobListResult, error) {
	op := fmt.Sprintf("list %s jobs of queue %q", p.State, p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE queue = ? AND state = ?`
	args := []any{p.Queue, string(p.State)}
	if p.TenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, p.TenantID)
	}
	if p.Type != "" {
		q += ` AND type = ?`
		args = append(args, p.Type)
	}
	q += ` ORDER BY ` + listOrder(p.State) + ` LIMIT ? OFFSET ?`
	args = append(args, limit+1, p.Offset)
	rows, err := b.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	res := &broker.JobListResult{Jobs: []*broker.Job{}, NextOffset: -1}
	for rows.Next() {
		j, _, err := scanJob(rows)
		if err != nil {
			return nil, b.fail(op, err)
		}
		if len(res.Jobs) == limit {
			res.NextOffset = p.Offset + limit
			break
		}
		res.Jobs = append(res.Jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	return res, nil
}

// wrongState explains why a statement guarded by a job's state changed no
// row: ErrNotFound if the job does not exist, else ErrWrongState.
func wrongState(ctx context.Context, tx *sql.Tx, queue, id string) error {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ? AND queue = ?`, id, queue).Scan(&state)
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
func (b *Broker) JobCancel(ctx context.Context, queue, id string) (*broker.Job, error) {
	op := fmt.Sprintf("cancel job %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	var j *broker.Job
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		var err error
		j, _, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = ?,
			lease_until = NULL
			WHERE id = ? AND queue = ? AND state IN ('scheduled', 'pending', 'active')
			RETURNING `+jobColumns, now, id, queue))
		if errors.Is(err, sql.ErrNoRows) {
			return wrongState(ctx, tx, queue, id)
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
func (b *Broker) JobRetry(ctx context.Context, queue, id string) (*broker.Job, error) {
	op := fmt.Sprintf("retry job %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	var j *broker.Job
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		var state string
		var key sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT state, unique_key FROM jobs WHERE id = ? AND queue = ?`,
			id, queue).Scan(&state, &key)
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
			var holder string
			err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE queue = ? AND unique_key = ?
				AND state IN ('scheduled', 'pending', 'active')`, queue, key.String).Scan(&holder)
			if err == nil {
				return &broker.DuplicateError{Queue: queue, ExistingID: holder, UniqueKey: key.String}
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("check unique key: %w", err)
			}
		}
		// The TTL is cleared: an operator retrying an expired job wants it run.
		j, _, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET state = 'pending', attempt = 0,
			run_at = ?, expires_at = NULL, finished_at = NULL, lease_until = NULL, worker_id = ''
			WHERE id = ? AND queue = ? RETURNING `+jobColumns, now, id, queue))
		return err
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return j, nil
}

// JobDelete removes a job that is not active. See broker.Broker.
func (b *Broker) JobDelete(ctx context.Context, queue, id string) error {
	op := fmt.Sprintf("delete job %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return err
	}
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE id = ? AND queue = ? AND state <> 'active'`, id, queue)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return wrongState(ctx, tx, queue, id)
		}
		return nil
	})
	if err != nil {
		return b.fail(op, err)
	}
	return nil
}
