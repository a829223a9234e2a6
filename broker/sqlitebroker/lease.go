package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// The statements of the hot paths, compiled once at Open. A LIMIT is
// written "? + 0": SQLite plans a bare "LIMIT ?" for the value bound when
// it recompiles a statement and then recompiles it whenever another value
// is bound, which a Manager's fetches, whose size follows the free slots,
// did at nearly every call (the parse was 7% of processing's CPU).
const (
	// sqlUntaggedWaits is whether a job of the queue row's fair queue
	// waits for its tag (an entry of jobs_untagged).
	sqlUntaggedWaits = `fair AND EXISTS (SELECT 1 FROM jobs WHERE queue = name AND state = 'pending' AND fair_tag = -1)`
	// sqlQueuePolicy also reads sqlUntaggedWaits, so that a fetch runs
	// tagUntagged only when one does: nearly every fetch of a fair queue
	// finds none, and the lookup here costs less than a statement.
	sqlQueuePolicy = `SELECT paused, fair, capped, max_active, rated, rate_limit, rate_period_us,
		EXISTS (SELECT 1 FROM tenant_paused WHERE queue = name), ` + sqlUntaggedWaits + `
		FROM queues WHERE name = ?`
	sqlPromote = `UPDATE jobs SET state = 'pending', ` + sqlRetag + `
		WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'scheduled' AND run_at <= ?
			ORDER BY run_at, seq LIMIT ? + 0)`
	sqlExpire = `UPDATE jobs SET state = 'expired', finished_at = ?
		WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'pending'
			AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ? + 0)`
	// The lease takes the next fencing token without writing the counter,
	// which sqlTakeToken then advances only if a job was leased: an empty
	// fetch writes nothing, so idle polling costs no disk sync. A token is
	// never below the clock in microseconds (the first argument of both),
	// so a database that lost its last transactions (synchronous=NORMAL
	// after a power cut) or was restored from a backup never hands out a
	// token again that a lease held before the loss may still carry.
	sqlTakeToken = `UPDATE counters SET value = MAX(value, ?) + 1 WHERE name = 'lease_token'`
	sqlLease     = `UPDATE jobs SET state = 'active', attempt = attempt + 1,
		lease_token = (SELECT MAX(value, ?) + 1 FROM counters WHERE name = 'lease_token'),
		lease_until = ?, started_at = ?, worker_id = ?
		WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'pending'
			ORDER BY priority, seq LIMIT ? + 0)
		RETURNING ` + leasedColumns
	sqlCompleteDelete = `DELETE FROM jobs WHERE id = ? AND queue = ? AND state = 'active' AND lease_token = ?`
	sqlExtend         = `UPDATE jobs SET lease_until = ?
		WHERE id = ? AND queue = ? AND state = 'active' AND lease_token = ?`
	sqlJobExists     = `SELECT 1 FROM jobs WHERE queue = ? AND id = ?`
	sqlRegisterQueue = `INSERT OR IGNORE INTO queues (name) VALUES (?)`
	// sqlInsertPolicy reads what inserts need of their queue's row
	// (fairInserts): whether the queue is fair, and sqlUntaggedWaits.
	sqlInsertPolicy = `SELECT fair, ` + sqlUntaggedWaits + ` FROM queues WHERE name = ?`
)

// sqlComplete completes an active job. Its attempt is not appended to the
// history: the row keeps it (attempt, worker, start, finish) and readers
// derive it (attemptsRead); attempts only turns from NULL to '[]', which
// marks the job as completed by a release that does so. A job inserted with
// DeleteOnComplete is not completed but deleted (sqlCompleteDelete), so the
// common completion stays one statement.
var sqlComplete = `UPDATE jobs SET state = 'completed', finished_at = ?1, result = ?2, lease_until = NULL,
	attempts = coalesce(attempts, '[]')
	WHERE id = ?3 AND queue = ?4 AND state = 'active' AND lease_token = ?5 AND NOT delete_on_complete`

var cachedQueries = slices.Concat(slices.Collect(maps.Values(sqlCompleteManys)), slices.Collect(maps.Values(insertSQLs)), []string{
	sqlCompleteSavepoint, sqlCompleteRelease, sqlCompleteRollbackTo, sqlQueuePolicy, sqlPromote, sqlExpire, sqlTakeToken, sqlLease,
	sqlComplete, sqlCompleteDelete, sqlExtend, sqlJobExists, sqlRegisterQueue, sqlInsertPolicy, insertJobSQL,
	sqlSavepoint, sqlRelease, sqlRollbackTo}, fairQueries, docQueries, maintainQueries)

// JobFetch promotes due jobs, expires stale ones and leases up to p.Limit
// pending jobs, all in one transaction. See broker.Broker.
func (b *Broker) JobFetch(ctx context.Context, p *broker.JobFetchParams) ([]*broker.Job, error) {
	op := fmt.Sprintf("fetch jobs from queue %q", p.Queue)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	type leased struct {
		job *broker.Job
		seq int64
	}
	var got []leased
	var picked []candidate     // fair or capped queues: the jobs chosen, in fetch order
	var fairJobs []*broker.Job // leaseFair's jobs, already in fetch order
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		q, err := b.readQueuePolicy(ctx, tx, p.Queue)
		if err != nil {
			return err
		}
		if q.paused {
			return broker.ErrQueuePaused
		}
		promoted, err := b.promote(ctx, tx, p.Queue, now, -1)
		if err != nil {
			return err
		}
		q.untagged = q.untagged || q.fair && promoted > 0
		if _, err := b.expire(ctx, tx, p.Queue, now, -1); err != nil {
			return err
		}
		floor := b.opts.Now().UnixMicro() // see sqlTakeToken
		var rows *sql.Rows
		var l *lease // what sqlLease set, for the columns it does not return
		switch {
		case q.fair && !q.capped && !q.rated && !q.tpaused:
			l := &lease{queue: p.Queue, worker: p.WorkerID, started: now, until: now + p.LeaseDuration.Milliseconds()}
			if fairJobs, err = b.leaseFair(ctx, tx, l, q.untagged, p.Limit, floor); err != nil {
				return err
			}
		case q.fair || q.capped || q.rated || q.tpaused:
			if picked, err = b.pickFair(ctx, tx, p.Queue, q, p.Limit, floor); err != nil {
				return err
			}
			if q.fair {
				if err := b.served(ctx, tx, p.Queue, picked, p.Limit); err != nil {
					return err
				}
			}
			if len(picked) == 0 {
				return nil
			}
			rows, err = b.leaseSeqs(ctx, tx, picked, floor, now+p.LeaseDuration.Milliseconds(), now, p.WorkerID)
		default:
			l = &lease{queue: p.Queue, worker: p.WorkerID, started: now, until: now + p.LeaseDuration.Milliseconds()}
			rows, err = b.query(ctx, tx, sqlLease, floor, l.until, now, p.WorkerID, p.Queue, p.Limit)
		}
		if err != nil {
			return fmt.Errorf("lease jobs: %w", err)
		}
		if rows != nil {
			defer rows.Close()
			var r rowScan
			for rows.Next() {
				var j *broker.Job
				var seq int64
				var err error
				if l != nil {
					j, seq, err = r.leased(rows, l)
				} else {
					j, seq, err = r.job(rows)
				}
				if err != nil {
					return fmt.Errorf("read leased job: %w", err)
				}
				got = append(got, leased{j, seq})
			}
			if err := rows.Err(); err != nil {
				return err
			}
			rows.Close()
		}
		if len(got) > 0 || len(fairJobs) > 0 {
			if _, err := b.exec(ctx, tx, sqlTakeToken, floor); err != nil {
				return fmt.Errorf("take lease token: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	if fairJobs != nil {
		return fairJobs, nil
	}
	// RETURNING has no defined order: restore the fetch order.
	rank := make(map[int64]int, len(picked))
	for i, c := range picked {
		rank[c.seq] = i
	}
	sort.Slice(got, func(i, k int) bool {
		if picked != nil {
			return rank[got[i].seq] < rank[got[k].seq]
		}
		if got[i].job.Priority != got[k].job.Priority {
			return got[i].job.Priority < got[k].job.Priority
		}
		return got[i].seq < got[k].seq
	})
	jobs := make([]*broker.Job, len(got))
	for i, l := range got {
		jobs[i] = l.job
	}
	return jobs, nil
}

// promote moves up to limit (-1: all) due scheduled jobs of queue to pending.
func (b *Broker) promote(ctx context.Context, tx *sql.Tx, queue string, now int64, limit int) (int, error) {
	res, err := b.exec(ctx, tx, sqlPromote, queue, now, limit)
	if err != nil {
		return 0, fmt.Errorf("promote due jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// expire moves up to limit (-1: all) pending jobs of queue past their TTL to
// expired.
func (b *Broker) expire(ctx context.Context, tx *sql.Tx, queue string, now int64, limit int) (int, error) {
	res, err := b.exec(ctx, tx, sqlExpire, now, queue, now, limit)
	if err != nil {
		return 0, fmt.Errorf("expire jobs past their TTL: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// leaseMiss explains why a statement guarded by a lease changed no row:
// ErrNotFound if the job does not exist, else ErrLeaseLost.
func (b *Broker) leaseMiss(ctx context.Context, tx *sql.Tx, p *broker.JobLeaseParams) error {
	var one int
	row, err := b.queryRow(ctx, tx, sqlJobExists, p.Queue, p.ID)
	if err == nil {
		err = row.Scan(&one)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("job %s in queue %q: %w", p.ID, p.Queue, broker.ErrNotFound)
	case err != nil:
		return fmt.Errorf("look up job %s: %w", p.ID, err)
	}
	return fmt.Errorf("job %s in queue %q, token %d: %w", p.ID, p.Queue, p.Token, broker.ErrLeaseLost)
}

// leaseBatch runs stmt (whose last three arguments are id, queue and token)
// for every lease in one transaction and reports each outcome.
func (b *Broker) leaseBatch(ctx context.Context, op, stmt string, n int,
	args func(i int, now int64) ([]any, *broker.JobLeaseParams)) ([]error, error) {
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	errs := make([]error, n)
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		s, err := b.stmt(ctx, tx, stmt)
		if err != nil {
			return err
		}
		for i := range n {
			a, lp := args(i, now)
			if lp == nil {
				errs[i] = fmt.Errorf("%w: lease %d is nil", broker.ErrInvalidJob, i)
				continue
			}
			res, err := s.ExecContext(ctx, append(a, lp.ID, lp.Queue, lp.Token)...)
			if err != nil {
				return fmt.Errorf("job %s: %w", lp.ID, err)
			}
			if k, _ := res.RowsAffected(); k == 0 {
				if errs[i] = b.leaseMiss(ctx, tx, lp); !errors.Is(errs[i], broker.ErrNotFound) && !errors.Is(errs[i], broker.ErrLeaseLost) {
					return errs[i]
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return errs, nil
}

// JobComplete acknowledges a batch of jobs in one transaction. See
// broker.Broker. Jobs that are deleted on completion are deleted whole:
// their row is all there is (the unique key is a partial index of it).
// CompletedMaxCount is left to QueueMaintain: counting a queue's completed
// jobs here would cost a scan per batch, and the store is on disk.
func (b *Broker) JobComplete(ctx context.Context, ps []*broker.JobCompleteParams) ([]error, error) {
	const op = "complete jobs"
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	errs := make([]error, len(ps))
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		clear(errs)
		all, err := b.completeAll(ctx, tx, ps, now)
		if err != nil {
			return err
		}
		if all && !slices.ContainsFunc(ps, func(p *broker.JobCompleteParams) bool { return !bulkComplete(p) }) {
			return nil // completeAll took every job: no statement of the loop runs
		}
		done, err := b.stmt(ctx, tx, sqlComplete)
		if err != nil {
			return err
		}
		gone, err := b.stmt(ctx, tx, sqlCompleteDelete)
		if err != nil {
			return err
		}
		for i, p := range ps {
			if p == nil {
				errs[i] = fmt.Errorf("%w: lease %d is nil", broker.ErrInvalidJob, i)
				continue
			}
			if all && bulkComplete(p) {
				continue
			}
			lp := &p.JobLeaseParams
			var n int64
			if !p.Delete {
				res, err := done.ExecContext(ctx, now, nullBlob(p.Result), lp.ID, lp.Queue, lp.Token)
				if err != nil {
					return fmt.Errorf("job %s: %w", lp.ID, err)
				}
				n, _ = res.RowsAffected()
			}
			if n == 0 { // to be deleted, or the lease is lost
				res, err := gone.ExecContext(ctx, lp.ID, lp.Queue, lp.Token)
				if err != nil {
					return fmt.Errorf("job %s: %w", lp.ID, err)
				}
				n, _ = res.RowsAffected()
			}
			if n == 0 {
				if errs[i] = b.leaseMiss(ctx, tx, lp); !errors.Is(errs[i], broker.ErrNotFound) && !errors.Is(errs[i], broker.ErrLeaseLost) {
					return errs[i]
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, b.fail(op, err)
	}
	return errs, nil
}

// completeSizes are the sizes of the statements that complete several
// jobs at once (sqlCompleteMany), largest first: a batch is completed by
// as few of them as add up to its size.
var completeSizes = []int{64, 16, 4, 1}

// completeManyMin is the smallest batch completeAll takes: below it the
// savepoint that lets it undo its work costs as much as it saves
// (BenchmarkFetchComplete/batch=5 was 1-2 µs per job slower with it).
const completeManyMin = 16

// sqlCompleteMany completes n jobs as sqlComplete does, for jobs without a
// result: one statement instead of n, whose fixed cost (binding, opening a
// cursor on the table and on each index, closing them) was a large part of
// an acknowledgement's (BenchmarkFetchComplete/batch=64: 19.7 -> 17.1
// cpu-µs per job fetched and completed, -13%, benchstat of 6 interleaved
// runs on a loaded machine). The row values are looked up in the
// (queue, id) index; a VALUES list costs no JSON parsing, which made an
// UPDATE ... FROM json_each(?) slower than a statement per job.
func sqlCompleteMany(n int) string {
	return `UPDATE jobs SET state = 'completed', finished_at = ?1, lease_until = NULL,
	attempts = coalesce(attempts, '[]')
	WHERE (queue, id, lease_token) IN (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ") + `)
		AND state = 'active' AND NOT delete_on_complete`
}

var sqlCompleteManys = func() map[int]string {
	m := make(map[int]string, len(completeSizes))
	for _, n := range completeSizes {
		m[n] = sqlCompleteMany(n)
	}
	return m
}()

// bulkComplete reports whether completeAll takes p.
func bulkComplete(p *broker.JobCompleteParams) bool {
	return p != nil && !p.Delete && len(p.Result) == 0
}

// completeAll completes the jobs of ps that bulkComplete takes, with
// sqlCompleteMany, and reports whether it did. When one of them could not
// be completed (its lease is lost, it is to be deleted, it is named twice)
// it undoes what it did and reports false: sqlComplete then takes each
// job on its own and says what became of it.
func (b *Broker) completeAll(ctx context.Context, tx *sql.Tx, ps []*broker.JobCompleteParams, now int64) (bool, error) {
	// args is now and then queue, id and token per job. Each statement
	// takes now and the next 3n values: the now it needs is written over
	// the value before them, which the statement before has used. A
	// batch's jobs mostly share their queue and token (a fetch's), boxed
	// once: putting a string or an int64 in an interface allocates.
	nowArg := any(now)
	args := []any{nowArg}
	var queue, token any
	for _, p := range ps {
		if bulkComplete(p) {
			if queue == nil || queue.(string) != p.Queue {
				queue = p.Queue
			}
			if token == nil || token.(int64) != p.Token {
				token = p.Token
			}
			args = append(args, queue, p.ID, token)
		}
	}
	want := (len(args) - 1) / 3
	if want < completeManyMin {
		return false, nil
	}
	if _, err := b.exec(ctx, tx, sqlCompleteSavepoint); err != nil {
		return false, fmt.Errorf("begin savepoint: %w", err)
	}
	var got int64
	for len(args) > 1 {
		i := slices.IndexFunc(completeSizes, func(n int) bool { return 3*n < len(args) })
		n := completeSizes[i]
		args[0] = nowArg
		res, err := b.exec(ctx, tx, sqlCompleteManys[n], args[:1+3*n]...)
		if err != nil {
			return false, fmt.Errorf("complete jobs: %w", err)
		}
		k, _ := res.RowsAffected()
		got += k
		args = args[3*n:]
	}
	if got != int64(want) {
		if _, err := b.exec(ctx, tx, sqlCompleteRollbackTo); err != nil {
			return false, fmt.Errorf("roll back to savepoint: %w", err)
		}
	}
	if _, err := b.exec(ctx, tx, sqlCompleteRelease); err != nil {
		return false, fmt.Errorf("release savepoint: %w", err)
	}
	return got == int64(want), nil
}

// The statements that undo completeAll.
const (
	sqlCompleteSavepoint  = `SAVEPOINT complete`
	sqlCompleteRelease    = `RELEASE complete`
	sqlCompleteRollbackTo = `ROLLBACK TO complete`
)

// JobLeaseExtend extends a batch of leases to now + d in one transaction.
// See broker.Broker.
func (b *Broker) JobLeaseExtend(ctx context.Context, ps []*broker.JobLeaseParams, d time.Duration) ([]error, error) {
	if d <= 0 {
		return nil, fmt.Errorf("extend leases: %w: duration %v must be positive", broker.ErrInvalidJob, d)
	}
	return b.leaseBatch(ctx, "extend leases", sqlExtend, len(ps),
		func(i int, now int64) ([]any, *broker.JobLeaseParams) {
			return []any{now + d.Milliseconds()}, ps[i]
		})
}

// nowArg, passed to one among a statement's arguments, stands for the
// transaction's clock (unix ms).
var nowArg = new(struct{ now bool })

// one runs a single lease-guarded statement and returns its error.
func (b *Broker) one(ctx context.Context, op, stmt string, p *broker.JobLeaseParams, args ...any) error {
	if p == nil {
		return fmt.Errorf("%s: %w: lease is nil", op, broker.ErrInvalidJob)
	}
	errs, err := b.leaseBatch(ctx, op, stmt, 1, func(_ int, now int64) ([]any, *broker.JobLeaseParams) {
		a := slices.Clone(args)
		for i, v := range a {
			if v == nowArg {
				a[i] = now
			}
		}
		return a, p
	})
	if err != nil {
		return err
	}
	if errs[0] != nil {
		return fmt.Errorf("%s: %w", op, errs[0])
	}
	return nil
}

// JobProgress stores progress for an active job. See broker.Broker.
func (b *Broker) JobProgress(ctx context.Context, p *broker.JobLeaseParams, progress json.RawMessage) error {
	if len(progress) > 0 && !json.Valid(progress) {
		return fmt.Errorf("store progress: %w: progress is not valid JSON", broker.ErrInvalidJob)
	}
	return b.one(ctx, "store progress", `UPDATE jobs SET progress = ?
		WHERE id = ? AND queue = ? AND state = 'active' AND lease_token = ?`, p, nullBlob(progress))
}

// JobRelease hands an active job back to pending without counting the
// attempt. See broker.Broker.
func (b *Broker) JobRelease(ctx context.Context, p *broker.JobLeaseParams) error {
	err := b.one(ctx, "release job", `UPDATE jobs SET state = 'pending', attempt = max(attempt - 1, 0),
		lease_until = NULL, worker_id = '', attempts = `+attemptsAfter("?1", "'handed_back'", "")+`
		WHERE id = ?2 AND queue = ?3 AND state = 'active' AND lease_token = ?4`, p, nowArg)
	if err == nil {
		b.waker().Notify(p.Queue, 0) // pending now: wake an idle worker
	}
	return err
}

// JobFail records a failed attempt: the job is scheduled for a retry or
// dead. See broker.Broker.
func (b *Broker) JobFail(ctx context.Context, p *broker.JobFailParams) (broker.State, error) {
	const op = "fail job"
	if err := b.checkOpen(op); err != nil {
		return "", err
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	var state broker.State
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		s, err := failJob(ctx, tx, p, now)
		if errors.Is(err, sql.ErrNoRows) {
			return b.leaseMiss(ctx, tx, &p.JobLeaseParams)
		}
		if err != nil {
			return err
		}
		state = broker.State(s)
		return nil
	})
	if err != nil {
		return "", b.fail(op, err)
	}
	if state == broker.StateScheduled {
		b.waker().Notify(p.Queue, p.RetryDelay) // idle workers arm a timer for the retry
	}
	return state, nil
}

// failJob records a failed attempt of the active job p names, under p's
// token: back to scheduled after p.RetryDelay while attempts are left (with
// p.MaxAttempts > 0 replacing the job's max attempts first) and p does not
// discard it, else dead; p.Headers are merged into the job's. It returns
// the new state, or sql.ErrNoRows when the job is not active under that
// token.
func failJob(ctx context.Context, tx *sql.Tx, p *broker.JobFailParams, now int64) (string, error) {
	var s string
	var add any // NULL: the headers stay as they are
	if len(p.Headers) > 0 {
		h, err := json.Marshal(p.Headers)
		if err != nil {
			return "", fmt.Errorf("encode headers of failed job %s: %w", p.ID, err)
		}
		add = string(h)
	}
	// SQLite evaluates every SET expression on the old row, so the
	// override (?2) is spelled out in each decision rather than read back.
	retry := `NOT ?1 AND attempt < iif(?2 > 0, ?2, max_attempts)`
	err := tx.QueryRowContext(ctx, `UPDATE jobs SET
		state = CASE WHEN `+retry+` THEN 'scheduled' ELSE 'dead' END,
		run_at = CASE WHEN `+retry+` THEN ?3 ELSE run_at END,
		finished_at = CASE WHEN `+retry+` THEN NULL ELSE ?4 END,
		max_attempts = iif(?2 > 0, ?2, max_attempts),
		last_error = ?5, lease_until = NULL,
		headers = iif(?6 IS NULL, headers, json_patch(coalesce(headers, '{}'), ?6)),
		attempts = `+attemptsAfter("?4", `CASE WHEN `+retry+` THEN 'retry_scheduled' ELSE 'dead' END`, "?7")+`
		WHERE id = ?8 AND queue = ?9 AND state = 'active' AND lease_token = ?10
		RETURNING state`,
		p.Discard, p.MaxAttempts, now+p.RetryDelay.Milliseconds(), now, p.Error, add,
		broker.ClipAttemptError(p.Error), p.ID, p.Queue, p.Token).Scan(&s)
	return s, err
}
