package sqlitebroker

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.JobRescheduler = (*Broker)(nil)

// JobReschedule moves a scheduled or pending job to runAt in one
// transaction; see broker.JobRescheduler.
func (b *Broker) JobReschedule(ctx context.Context, queue, id string, runAt time.Time) (*broker.Job, error) {
	op := fmt.Sprintf("reschedule job %s in queue %q", id, queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		due := max(runAt.UnixMilli(), now)
		state := broker.StatePending
		if due > now {
			state = broker.StateScheduled
		}
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, run_at = ?,
			expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE expires_at - run_at + ? END
			WHERE queue = ? AND id = ? AND state IN ('scheduled', 'pending')`, string(state), due, due, queue, id)
		if err != nil {
			return fmt.Errorf("update job: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return wrongState(ctx, tx, queue, id)
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return b.JobGet(ctx, queue, id)
}
