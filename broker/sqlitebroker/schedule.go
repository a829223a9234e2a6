package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/broker"
)

var _ broker.ScheduleStore = (*Broker)(nil)

// ScheduleUpsert creates or replaces a schedule in one transaction; see
// broker.ScheduleStore.
func (b *Broker) ScheduleUpsert(ctx context.Context, s *broker.Schedule) (*broker.Schedule, error) {
	if err := b.checkOpen("upsert schedule"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	def := &broker.Schedule{Name: s.Name, Spec: s.Spec, TimeZone: s.TimeZone, Job: s.Job,
		CatchUp: s.CatchUp, CatchUpWindow: s.CatchUpWindow}
	def.Job.ID, def.Job.Delay, def.Job.RunAt = "", 0, time.Time{}
	body, err := json.Marshal(def)
	if err != nil {
		return nil, fmt.Errorf("upsert schedule %q: encode: %w", s.Name, err)
	}
	queue := s.Job.Queue
	timing := s.Spec + "\x00" + s.TimeZone + "\x00" + queue
	var out *broker.Schedule
	err = b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO schedules (name, queue, def, timing, version, created_at, updated_at, since)
			VALUES (?, ?, ?, ?, 1, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, def = excluded.def, timing = excluded.timing,
				version = version + 1, updated_at = excluded.updated_at,
				since = CASE WHEN timing = excluded.timing THEN since ELSE excluded.since END,
				last_tick = CASE WHEN queue = excluded.queue THEN last_tick ELSE 0 END`,
			s.Name, queue, string(body), timing, now, now, now)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO queues (name) VALUES (?)`, queue); err != nil {
			return fmt.Errorf("register queue: %w", err)
		}
		out, err = scanSchedule(tx.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = ?`, s.Name))
		return err
	})
	if err != nil {
		return nil, b.fail(fmt.Sprintf("upsert schedule %q", s.Name), err)
	}
	return out, nil
}

// scheduleColumns lists the columns scanSchedule reads, in order.
const scheduleColumns = `def, version, paused, created_at, updated_at, since, last_tick`

// scanSchedule reads one row of scheduleColumns.
func scanSchedule(row scanner) (*broker.Schedule, error) {
	var (
		def                                  string
		s                                    broker.Schedule
		paused                               bool
		created, updated, since, last, verNo int64
	)
	if err := row.Scan(&def, &verNo, &paused, &created, &updated, &since, &last); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(def), &s); err != nil {
		return nil, fmt.Errorf("decode schedule definition: %w", err)
	}
	s.Version, s.Paused = verNo, paused
	s.CreatedAt, s.UpdatedAt, s.Since = time.UnixMilli(created), time.UnixMilli(updated), time.UnixMilli(since)
	if last > 0 {
		s.LastTick = time.UnixMilli(last)
	}
	return &s, nil
}

// ScheduleGet returns one schedule; see broker.ScheduleStore.
func (b *Broker) ScheduleGet(ctx context.Context, name string) (*broker.Schedule, error) {
	op := fmt.Sprintf("get schedule %q", name)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	s, err := scanSchedule(b.read.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM schedules WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrScheduleNotFound)
	}
	if err != nil {
		return nil, b.fail(op, err)
	}
	return s, nil
}

// ScheduleList returns every schedule, sorted by name; see
// broker.ScheduleStore.
func (b *Broker) ScheduleList(ctx context.Context) (*broker.ScheduleListResult, error) {
	const op = "list schedules"
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	now := b.now()
	rows, err := b.read.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM schedules ORDER BY name`)
	if err != nil {
		return nil, b.fail(op, err)
	}
	defer rows.Close()
	out := &broker.ScheduleListResult{Now: time.UnixMilli(now)}
	for rows.Next() {
		s, err := scanSchedule(rows)
		if err != nil {
			return nil, b.fail(op, err)
		}
		out.Schedules = append(out.Schedules, s)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(op, err)
	}
	return out, nil
}

// ScheduleDelete removes a schedule; see broker.ScheduleStore.
func (b *Broker) ScheduleDelete(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete schedule %q", name)
	if err := b.checkOpen(op); err != nil {
		return err
	}
	return b.scheduleExec(ctx, op, `DELETE FROM schedules WHERE name = ?`, name)
}

// SchedulePause sets or clears a schedule's paused flag; see
// broker.ScheduleStore.
func (b *Broker) SchedulePause(ctx context.Context, name string, paused bool) error {
	op := fmt.Sprintf("pause schedule %q", name)
	if err := b.checkOpen(op); err != nil {
		return err
	}
	return b.scheduleExec(ctx, op, `UPDATE schedules SET paused = ? WHERE name = ?`, paused, name)
}

// scheduleExec runs one statement on a schedule row and reports
// ErrScheduleNotFound when it touched none.
func (b *Broker) scheduleExec(ctx context.Context, op, query string, args ...any) error {
	err := b.inTx(ctx, func(tx *sql.Tx, _ int64) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return broker.ErrScheduleNotFound
		}
		return nil
	})
	if err != nil {
		return b.fail(op, err)
	}
	return nil
}

// ScheduleClaim claims a tick and inserts its job in one transaction; see
// broker.ScheduleStore.
func (b *Broker) ScheduleClaim(ctx context.Context, p *broker.ScheduleClaimParams) (*broker.ScheduleClaimResult, error) {
	if err := b.checkOpen("claim schedule tick"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var res *broker.ScheduleClaimResult
	err := b.inTx(ctx, func(tx *sql.Tx, now int64) error {
		var err error
		res, err = claim(ctx, tx, p, now)
		return err
	})
	if err != nil {
		return nil, b.fail(fmt.Sprintf("claim tick of schedule %q", p.Name), err)
	}
	return res, nil
}

// claim does ScheduleClaim's work inside its transaction.
func claim(ctx context.Context, tx *sql.Tx, p *broker.ScheduleClaimParams, now int64) (*broker.ScheduleClaimResult, error) {
	var (
		queue              string
		version            int64
		paused             bool
		since, last, tick  = int64(0), int64(0), p.Tick.UnixMilli()
		res                = &broker.ScheduleClaimResult{Now: time.UnixMilli(now)}
		setStatus, consume = func(st broker.ClaimStatus) { res.Status = st }, false
	)
	err := tx.QueryRowContext(ctx, `SELECT queue, version, paused, since, last_tick FROM schedules WHERE name = ?`, p.Name).
		Scan(&queue, &version, &paused, &since, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, broker.ErrScheduleNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read schedule: %w", err)
	}
	if p.Job.Queue != queue {
		return nil, &broker.InvalidError{Index: -1, Field: "job.queue", Reason: fmt.Sprintf("%q is not the schedule's queue %q", p.Job.Queue, queue)}
	}
	switch {
	case paused:
		setStatus(broker.ClaimPaused)
	case p.Version != 0 && p.Version != version:
		setStatus(broker.ClaimChanged)
	case tick <= since:
		setStatus(broker.ClaimTooOld)
	case tick <= last:
		setStatus(broker.ClaimTaken)
	case tick > now:
		setStatus(broker.ClaimEarly)
	default:
		consume = true
	}
	if consume {
		st, job, err := insertTickJob(ctx, tx, p, now)
		if err != nil {
			return nil, err
		}
		res.Status, res.Job = st, job
		if _, err := tx.ExecContext(ctx, `UPDATE schedules SET last_tick = ? WHERE name = ?`, tick, p.Name); err != nil {
			return nil, fmt.Errorf("record tick: %w", err)
		}
		last = tick
	}
	if last > 0 {
		res.LastTick = time.UnixMilli(last)
	}
	return res, nil
}

// insertTickJob inserts the job of a claimed tick, due at the tick, unless
// its id exists, its unique key is held or its queue is full.
func insertTickJob(ctx context.Context, tx *sql.Tx, p *broker.ScheduleClaimParams, now int64) (broker.ClaimStatus, *broker.Job, error) {
	jp := *p.Job
	jp.RunAt, jp.Delay = p.Tick, 0
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE id = ?`, jp.ID).Scan(&one)
	if err == nil {
		return broker.ClaimTaken, nil, nil // the deterministic id is the second guard
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", nil, fmt.Errorf("look up job %s: %w", jp.ID, err)
	}
	if jp.UniqueKey != "" {
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE queue = ? AND unique_key = ?
			AND state IN ('scheduled', 'pending', 'active')`, jp.Queue, jp.UniqueKey).Scan(&one)
		if err == nil {
			return broker.ClaimUniqueHeld, nil, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", nil, fmt.Errorf("look up unique key: %w", err)
		}
	}
	if err := checkQueueLength(ctx, tx, []*broker.JobInsertParams{&jp}); errors.Is(err, broker.ErrQueueFull) {
		return broker.ClaimQueueFull, nil, nil
	} else if err != nil {
		return "", nil, err
	}
	j, args, err := newJob(&jp, now)
	if err != nil {
		return "", nil, err
	}
	if _, err := tx.ExecContext(ctx, insertJobSQL, args...); err != nil {
		return "", nil, fmt.Errorf("insert job %s: %w", jp.ID, err)
	}
	return broker.ClaimOK, j, nil
}

// JobReschedule moves a scheduled or pending job to runAt in one
// transaction; see broker.ScheduleStore.
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
