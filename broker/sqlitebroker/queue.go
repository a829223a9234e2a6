package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

// QueueStats counts a queue's jobs by state. See broker.Broker.
func (b *Broker) QueueStats(ctx context.Context, p *broker.QueueStatsParams) (*broker.QueueStats, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	queue := p.Queue
	op := fmt.Sprintf("count jobs of queue %q", queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	countQ, oldestQ, recentQ, args := statsQueries(p)
	// One read transaction so the counts and the paused flag agree.
	tx, err := b.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer tx.Rollback()
	st := &broker.QueueStats{Queue: queue}
	err = tx.QueryRowContext(ctx, `SELECT paused FROM queues WHERE name = ?`, queue).Scan(&st.Paused)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, b.fail(op, err)
	}
	rows, err := tx.QueryContext(ctx, countQ, args...)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, b.fail(op, err)
		}
		switch broker.State(state) {
		case broker.StateScheduled:
			st.Scheduled = n
		case broker.StatePending:
			st.Pending = n
		case broker.StateActive:
			st.Active = n
		case broker.StateCompleted:
			st.Completed = n
		case broker.StateDead:
			st.Dead = n
		case broker.StateCancelled:
			st.Cancelled = n
		case broker.StateExpired:
			st.Expired = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	// Exact: the smallest RunAt over every pending job of the queue or
	// tenant (a range scan of the entries of jobs_pending or
	// jobs_tenant_pending).
	var oldest sql.NullInt64
	err = tx.QueryRowContext(ctx, oldestQ, args...).Scan(&oldest)
	if err != nil {
		return nil, b.fail(op, err)
	}
	since := b.opts.Now().Add(-broker.RecentWindow).UnixMilli()
	if err := tx.QueryRowContext(ctx, recentQ, append(args, since)...).Scan(&st.CompletedLastMinute); err != nil {
		return nil, b.fail(op, fmt.Errorf("count jobs completed recently: %w", err))
	}
	if p.TenantID != "" {
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM tenant_paused WHERE queue = ? AND tenant = ?)`,
			queue, p.TenantID).Scan(&st.TenantPaused)
		if err != nil {
			return nil, b.fail(op, err)
		}
	}
	if st.Rates, err = b.rateStats(ctx, tx, queue, p.TenantID); err != nil {
		return nil, b.fail(op, err)
	}
	if oldest.Valid {
		st.OldestPendingAt = time.UnixMilli(oldest.Int64)
	}
	return st, nil
}

// statsQueries returns QueueStats' queries, the counts by state, the
// oldest pending RunAt and the jobs completed since a time (its last
// argument, after args), and their arguments. The counts read the partial
// index of each state (migrations 0014 and 0015), repeating its condition;
// a tenant's queries repeat the partial condition of the tenant indexes
// too, so that they read only the tenant's entries. The recent count is a
// range of jobs_finished or jobs_tenant_finished.
func statsQueries(p *broker.QueueStatsParams) (count, oldest, recent string, args []any) {
	where, args := `queue = ?1`, []any{p.Queue}
	if p.TenantID != "" {
		where, args = `queue = ?1 AND tenant_id = ?2 AND tenant_id <> ''`, []any{p.Queue, p.TenantID}
	}
	from := ` count(*) FROM jobs WHERE ` + where
	return `SELECT 'pending',` + from + ` AND state = 'pending'
		UNION ALL SELECT 'scheduled',` + from + ` AND state = 'scheduled'
		UNION ALL SELECT 'active',` + from + ` AND state = 'active'
		UNION ALL SELECT state,` + from + ` AND finished_at IS NOT NULL
			AND state IN ('completed', 'dead', 'cancelled', 'expired') GROUP BY state`,
		`SELECT min(run_at) FROM jobs WHERE ` + where + ` AND state = 'pending'`,
		`SELECT count(*) FROM jobs WHERE ` + where + ` AND state = 'completed' AND finished_at >= ?`, args
}

// QueueList names every queue that has held a job or been paused, sorted.
func (b *Broker) QueueList(ctx context.Context) ([]string, error) {
	const op = "list queues"
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	rows, err := b.read.QueryContext(ctx, `SELECT name FROM queues ORDER BY name`)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, b.fail(op, err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	return names, nil
}

// QueuePause stops JobFetch from leasing the queue's jobs. Idempotent.
func (b *Broker) QueuePause(ctx context.Context, queue string) error {
	return b.setPaused(ctx, queue, true)
}

// QueueResume lets JobFetch lease the queue's jobs again. Idempotent.
func (b *Broker) QueueResume(ctx context.Context, queue string) error {
	return b.setPaused(ctx, queue, false)
}

func (b *Broker) setPaused(ctx context.Context, queue string, paused bool) error {
	op := fmt.Sprintf("pause queue %q", queue)
	if !paused {
		op = fmt.Sprintf("resume queue %q", queue)
	}
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := broker.ValidateQueueName(queue); err != nil {
		return fmt.Errorf("%s: %w: %v", op, broker.ErrInvalidJob, err)
	}
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO queues (name, paused) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused`, queue, paused)
		return err
	})
	if err != nil {
		return b.fail(op, err)
	}
	if !paused {
		b.waker().Notify(queue, 0) // its jobs may be fetched again
	}
	return nil
}

// The statements of QueueMaintain, compiled once at Open (cachedQueries):
// a Manager maintains each queue it serves every MaintainInterval while
// the queue has jobs, and each of a thousand idle ones at its first round,
// and compiling them was most of a call's cost (0.4 ms on an empty queue,
// which held the one writer: inserts and fetches waited behind a thousand
// of them at a Manager's start). LIMITs are "? + 0", as in lease.go.
var (
	sqlRecoverLeases = `WITH due AS (
		SELECT seq, ?4 > 0 AND coalesce(json_array_length(attempts), 0) >= ?4 - 1 AND (
			SELECT count(*) FROM json_each(attempts)
			WHERE key >= json_array_length(attempts) - (?4 - 1) AND json_extract(value, '$[4]') = 'lease_expired'
		) = ?4 - 1 AS crashed,
		?4 > 0 AND ?6 > 0 AND (?4 <= 2 OR json_extract(attempts, '$[#-1][4]') IS 'lease_expired') AS again
		FROM jobs WHERE queue = ?2 AND state = 'active' AND lease_until <= ?1
		ORDER BY lease_until LIMIT ?3 + 0)
	UPDATE jobs SET
	state = CASE WHEN due.crashed OR attempt >= max_attempts THEN 'dead' WHEN due.again THEN 'scheduled' ELSE 'pending' END,
	run_at = CASE WHEN NOT due.crashed AND attempt < max_attempts AND due.again THEN ?1 + abs(random() % ?6) ELSE run_at END,
	finished_at = CASE WHEN due.crashed OR attempt >= max_attempts THEN ?1 END,
	last_error = CASE WHEN due.crashed THEN ?5 WHEN attempt < max_attempts THEN last_error ELSE 'lease expired' END,
	lease_until = NULL, worker_id = '', attempts = ` + attemptsAfter("?1", "'lease_expired'", "'lease expired'") + `
	FROM due WHERE jobs.seq = due.seq
	RETURNING state, state = 'dead' AND last_error = ?5`
	sqlRetainCompletedAge = `DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs
		WHERE queue = ? AND state = 'completed' AND finished_at IS NOT NULL AND finished_at < ?
		ORDER BY finished_at LIMIT ? + 0)`
	sqlRetainCompletedCount = `DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs
		WHERE queue = ? AND state = 'completed' AND finished_at IS NOT NULL
		ORDER BY finished_at DESC, seq DESC LIMIT ? + 0 OFFSET ?)`
	sqlRetainDeadAge = `DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs
		WHERE queue = ? AND state = 'dead' AND finished_at IS NOT NULL AND finished_at < ?
		ORDER BY finished_at LIMIT ? + 0)`
	sqlQueueIdle = `SELECT NOT EXISTS (SELECT 1 FROM jobs
		WHERE queue = ? AND state IN ('pending', 'scheduled', 'active'))`
	maintainQueries = []string{sqlRecoverLeases, sqlRetainCompletedAge, sqlRetainCompletedCount, sqlRetainDeadAge, sqlQueueIdle, sqlLeaderAcquire}
)

// QueueMaintain does a queue's housekeeping in one transaction, each step
// bounded by p.Limit. See broker.Broker.
func (b *Broker) QueueMaintain(ctx context.Context, p *broker.QueueMaintainParams) (*broker.QueueMaintainResult, error) {
	op := fmt.Sprintf("maintain queue %q", p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(p.Queue); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", op, broker.ErrInvalidJob, err)
	}
	if err := broker.ValidateMaintain(p); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = 1000
	}
	res := &broker.QueueMaintainResult{}
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		*res = broker.QueueMaintainResult{}
		if err := b.recoverLeases(ctx, tx, p, now, limit, res); err != nil {
			return err
		}
		var err error
		if res.Promoted, err = b.promote(ctx, tx, p.Queue, now, limit); err != nil {
			return err
		}
		if res.Expired, err = b.expire(ctx, tx, p.Queue, now, limit); err != nil {
			return err
		}
		var full bool
		res.Removed, full, err = b.retain(ctx, tx, p, now, limit)
		res.More = full || res.Recovered+res.Dead >= limit || res.Promoted >= limit || res.Expired >= limit
		if err != nil || res.More {
			return err
		}
		row, err := b.queryRow(ctx, tx, sqlQueueIdle, p.Queue)
		if err != nil {
			return err
		}
		return row.Scan(&res.Idle)
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	if res.Recovered+res.Promoted > 0 {
		b.waker().Notify(p.Queue, 0) // jobs became pending: wake an idle worker
	}
	return res, nil
}

// recoverLeases returns jobs whose lease expired to pending, or to dead when
// they have no attempts left or the attempt ends a run of p.MaxCrashes
// lease expiries (quarantined: the last p.MaxCrashes-1 entries of the
// history as it was are all lease_expired). With the rule on, a job whose
// last attempt before this one expired too (any job, with MaxCrashes 2) is
// scheduled after a random delay under p.CrashSpread instead
// (broker.QueueMaintainParams).
func (b *Broker) recoverLeases(ctx context.Context, tx *sql.Tx, p *broker.QueueMaintainParams, now int64, limit int, res *broker.QueueMaintainResult) error {
	rows, err := b.query(ctx, tx, sqlRecoverLeases, now, p.Queue, limit, p.MaxCrashes, broker.QuarantineReason(p.MaxCrashes),
		p.CrashSpread.Milliseconds())
	if err != nil {
		return fmt.Errorf("recover expired leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var crashed bool // a quarantine: no other way to dead carries its reason
		if err := rows.Scan(&s, &crashed); err != nil {
			return fmt.Errorf("recover expired leases: %w", err)
		}
		switch {
		case crashed:
			res.Dead++
			res.Quarantined++
		case s == string(broker.StateDead):
			res.Dead++
		default:
			res.Recovered++
		}
	}
	return rows.Err()
}

// retain removes completed and dead jobs past the retention rules, at most
// limit per rule. full reports that a rule removed limit jobs: it may have
// more to remove.
func (b *Broker) retain(ctx context.Context, tx *sql.Tx, p *broker.QueueMaintainParams, now int64, limit int) (removed int, full bool, err error) {
	del := func(what, q string, args ...any) error {
		res, err := b.exec(ctx, tx, q, args...)
		if err != nil {
			return fmt.Errorf("remove %s: %w", what, err)
		}
		n, _ := res.RowsAffected()
		removed += int(n)
		full = full || int(n) >= limit
		return nil
	}
	if p.CompletedMaxAge > 0 {
		err := del("old completed jobs", sqlRetainCompletedAge, p.Queue, now-p.CompletedMaxAge.Milliseconds(), limit)
		if err != nil {
			return removed, full, err
		}
	}
	if p.CompletedMaxCount > 0 {
		err := del("surplus completed jobs", sqlRetainCompletedCount, p.Queue, limit, p.CompletedMaxCount)
		if err != nil {
			return removed, full, err
		}
	}
	if p.DeadMaxAge > 0 {
		err := del("old dead jobs", sqlRetainDeadAge, p.Queue, now-p.DeadMaxAge.Milliseconds(), limit)
		if err != nil {
			return removed, full, err
		}
	}
	return removed, full, nil
}
