package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// finishedRuns is the SQL condition of a finished run; it matches the
// partial index workflow_runs_finished word for word, so SQLite uses it.
const finishedRuns = `state IN ('succeeded', 'failed', 'cancelled')`

// WorkflowRunMaintain removes finished runs past the retention rules, each
// one whole, in one transaction; see broker.WorkflowStore. The oldest
// finished runs are read through the index workflow_runs_finished, and the
// count rule reads the number of finished runs kept by triggers (migration
// 0004), so a call reads only the runs it examines.
func (b *Broker) WorkflowRunMaintain(ctx context.Context, p *broker.WorkflowRunMaintainParams) (int, error) {
	const op = "maintain workflow runs"
	if err := b.checkOpen(op); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 1000
	}
	removed := 0
	err := b.inLeaseTx(ctx, func(tx *sql.Tx, now int64) error {
		removed = 0
		if p.FinishedMaxAge > 0 {
			ids, err := queryIDs(ctx, tx, `SELECT id FROM workflow_runs WHERE queue = ? AND `+finishedRuns+`
				AND finished_at < ? ORDER BY finished_at, id LIMIT ?`, p.Queue, now-ceilMs(p.FinishedMaxAge), limit)
			if err != nil {
				return fmt.Errorf("find runs finished before the max age: %w", err)
			}
			for _, id := range ids {
				ok, err := removeRun(ctx, tx, p.Queue, id)
				if err != nil {
					return err
				}
				if ok {
					removed++
				}
			}
		}
		if p.FinishedMaxCount > 0 {
			n, err := removeSurplusRuns(ctx, tx, p.Queue, p.FinishedMaxCount, limit)
			removed += n
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, b.fail(fmt.Sprintf("%s of queue %q", op, p.Queue), err)
	}
	return removed, nil
}

// removeSurplusRuns removes the oldest finished runs of queue beyond the
// newest keep, examining at most limit runs.
func removeSurplusRuns(ctx context.Context, tx *sql.Tx, queue string, keep, limit int) (int, error) {
	var finished int
	err := tx.QueryRowContext(ctx, `SELECT n FROM workflow_finished_counts WHERE queue = ?`, queue).Scan(&finished)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count finished runs: %w", err)
	}
	excess := finished - keep
	if excess <= 0 {
		return 0, nil
	}
	ids, err := queryIDs(ctx, tx, `SELECT id FROM workflow_runs WHERE queue = ? AND `+finishedRuns+`
		ORDER BY finished_at, id LIMIT ?`, queue, min(excess, limit))
	if err != nil {
		return 0, fmt.Errorf("find the oldest finished runs: %w", err)
	}
	removed := 0
	for _, id := range ids {
		ok, err := removeRun(ctx, tx, queue, id)
		if err != nil {
			return removed, err
		}
		if ok {
			removed++
		}
	}
	return removed, nil
}

// removeRun deletes a finished run whole (run row, steps, idempotency key
// with the row, and the finished jobs that carried it) and reports true; it
// reports false and changes nothing when one of the run's jobs is still
// unfinished.
func removeRun(ctx context.Context, tx *sql.Tx, queue, id string) (bool, error) {
	r, err := loadRun(ctx, tx, queue, id)
	if err != nil {
		return false, err
	}
	if r.State == broker.WorkflowRunning {
		return false, nil
	}
	args := []any{queue}
	for _, s := range r.Steps {
		args = append(args, s.Job.ID)
		if s.Compensation != nil {
			args = append(args, s.Compensation.ID)
		}
	}
	for _, hook := range []*broker.WorkflowJob{r.OnSuccess, r.OnFailure} {
		if hook != nil {
			args = append(args, hook.ID)
		}
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(args)-1), ", ") + ")"
	var open int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE queue = ? AND id IN `+in+`
		AND state IN ('scheduled', 'pending', 'active')`, args...).Scan(&open)
	if err != nil {
		return false, fmt.Errorf("look up the jobs of run %s: %w", id, err)
	}
	if open > 0 {
		return false, nil // a compensation or hook still runs: keep the run until it is done
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE queue = ? AND id IN `+in, args...); err != nil {
		return false, fmt.Errorf("remove the jobs of run %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM workflow_steps WHERE queue = ? AND run_id = ?`, queue, id); err != nil {
		return false, fmt.Errorf("remove the steps of run %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM workflow_runs WHERE queue = ? AND id = ?`, queue, id); err != nil {
		return false, fmt.Errorf("remove run %s: %w", id, err)
	}
	return true, nil
}

// queryIDs runs a query returning one text column.
func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ceilMs is d in milliseconds, rounded up.
func ceilMs(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
