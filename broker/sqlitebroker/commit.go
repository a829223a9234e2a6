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

var _ broker.Committer = (*Broker)(nil)

// Commit applies p in one transaction; see broker.Committer.
func (b *Broker) Commit(ctx context.Context, p *broker.CommitParams) (*broker.CommitResult, error) {
	if err := b.checkOpen("commit"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var res *broker.CommitResult
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		var err error
		res, err = b.commit(ctx, tx, p, now)
		return err
	})
	if err != nil {
		return nil, b.fail(fmt.Sprintf("commit to queue %q", p.Scope), err)
	}
	var inserted []*broker.Job
	for _, j := range res.Jobs {
		if j != nil {
			inserted = append(inserted, j)
		}
	}
	b.notifyInserted(inserted)
	for i, st := range res.Failed {
		if st == broker.StateScheduled {
			b.waker().Notify(p.Scope, p.Fail[i].RetryDelay)
		}
	}
	for _, r := range p.Reschedule {
		b.waker().Notify(p.Scope, max(r.RunAt.Sub(res.Now), 0)) // idle workers arm a timer for it
	}
	return res, nil
}

func (b *Broker) commit(ctx context.Context, tx *sql.Tx, p *broker.CommitParams, now int64) (*broker.CommitResult, error) {
	if !p.NotBefore.IsZero() && now < p.NotBefore.UnixMilli()+boolInt(p.NotBefore.Nanosecond()%1e6 != 0) {
		return nil, &broker.TooEarlyError{Now: time.UnixMilli(now)}
	}
	res := &broker.CommitResult{Now: time.UnixMilli(now)}
	for _, c := range p.Complete {
		// As JobComplete: a job inserted with DeleteOnComplete, or a
		// completion asking for it, is removed whole.
		n := int64(0)
		if !c.Delete {
			r, err := b.exec(ctx, tx, sqlComplete, now, nullBlob(c.Result), c.ID, c.Queue, c.Token)
			if err != nil {
				return nil, fmt.Errorf("complete job %s: %w", c.ID, err)
			}
			n, _ = r.RowsAffected()
		}
		if n == 0 {
			r, err := b.exec(ctx, tx, sqlCompleteDelete, c.ID, c.Queue, c.Token)
			if err != nil {
				return nil, fmt.Errorf("complete job %s: %w", c.ID, err)
			}
			n, _ = r.RowsAffected()
		}
		if n == 0 {
			return nil, b.leaseMiss(ctx, tx, &c.JobLeaseParams)
		}
	}
	for _, f := range p.Fail {
		s, err := failJob(ctx, tx, f, now)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, b.leaseMiss(ctx, tx, &f.JobLeaseParams)
		}
		if err != nil {
			return nil, fmt.Errorf("fail job %s: %w", f.ID, err)
		}
		res.Failed = append(res.Failed, broker.State(s))
	}
	for _, d := range p.Docs {
		v, err := b.writeDoc(ctx, tx, p.Scope, d)
		if err != nil {
			return nil, err
		}
		res.Versions = append(res.Versions, v)
	}
	for _, id := range p.Cancel {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = ?1, lease_until = NULL,
			`+cancelAttempts+`
			WHERE id = ?2 AND queue = ?3 AND state IN ('scheduled', 'pending', 'active')`, now, id, p.Scope); err != nil {
			return nil, fmt.Errorf("cancel job %s: %w", id, err)
		}
	}
	for _, r := range p.Reschedule {
		due := max(r.RunAt.UnixMilli(), now)
		state := broker.StatePending
		if due > now {
			state = broker.StateScheduled
		}
		// A TTL keeps its length: ExpiresAt moves with the due time.
		moved, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, run_at = ?, `+sqlRetag+`,
			expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE expires_at - run_at + ? END
			WHERE queue = ? AND id = ? AND state IN ('scheduled', 'pending')`, string(state), due, due, p.Scope, r.ID)
		if err != nil {
			return nil, fmt.Errorf("reschedule job %s: %w", r.ID, err)
		}
		if n, _ := moved.RowsAffected(); n == 0 {
			return nil, fmt.Errorf("reschedule job %s: %w", r.ID, wrongState(ctx, tx, p.Scope, r.ID, ""))
		}
	}
	for _, id := range p.Absent {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM jobs WHERE queue = ? AND id = ?`, p.Scope, id).Scan(&one)
		if err == nil {
			return nil, &broker.DuplicateError{Queue: p.Scope, ExistingID: id}
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("look up job %s: %w", id, err)
		}
	}
	for _, id := range p.Delete {
		var state string
		err := tx.QueryRowContext(ctx, `DELETE FROM jobs WHERE id = ? AND queue = ? RETURNING state`, id, p.Scope).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("delete job %s: %w", id, err)
		}
		if !broker.State(state).Finished() {
			return nil, fmt.Errorf("%w: job %s to delete is %s", broker.ErrConflict, id, state)
		}
	}
	if len(p.Insert) > 0 {
		if err := b.commitInserts(ctx, tx, p, now, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// The statements of document writes, compiled once at Open (cachedQueries):
// an audited request writes several.
const (
	sqlDocVersion = `SELECT version FROM docs WHERE scope = ? AND kind = ? AND key = ?`
	sqlDocUnindex = `DELETE FROM doc_index WHERE scope = ? AND kind = ? AND key = ?`
	sqlDocDelete  = `DELETE FROM docs WHERE scope = ? AND kind = ? AND key = ?`
	sqlDocWrite   = `INSERT INTO docs (scope, kind, key, version, body) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (scope, kind, key) DO UPDATE SET version = excluded.version, body = excluded.body`
	sqlDocIndex = `INSERT OR REPLACE INTO doc_index (scope, kind, name, key, score) VALUES (?, ?, ?, ?, ?)`
)

var docQueries = []string{sqlDocVersion, sqlDocUnindex, sqlDocDelete, sqlDocWrite, sqlDocIndex}

// writeDoc applies one compare-and-set document write and returns the new
// version (0 after a delete).
func (b *Broker) writeDoc(ctx context.Context, tx *sql.Tx, scope string, d *broker.DocWrite) (int64, error) {
	var v int64
	row, err := b.queryRow(ctx, tx, sqlDocVersion, scope, d.Kind, d.Key)
	if err == nil {
		err = row.Scan(&v)
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read document %s %q: %w", d.Kind, d.Key, err)
	}
	if v != d.Version {
		return 0, fmt.Errorf("%w: document %s %q is at version %d, not %d", broker.ErrConflict, d.Kind, d.Key, v, d.Version)
	}
	if _, err := b.exec(ctx, tx, sqlDocUnindex, scope, d.Kind, d.Key); err != nil {
		return 0, fmt.Errorf("remove index entries of document %s %q: %w", d.Kind, d.Key, err)
	}
	if d.Delete {
		if _, err := b.exec(ctx, tx, sqlDocDelete, scope, d.Kind, d.Key); err != nil {
			return 0, fmt.Errorf("delete document %s %q: %w", d.Kind, d.Key, err)
		}
		return 0, nil
	}
	if _, err := b.exec(ctx, tx, sqlDocWrite, scope, d.Kind, d.Key, v+1, []byte(d.Body)); err != nil {
		return 0, fmt.Errorf("write document %s %q: %w", d.Kind, d.Key, err)
	}
	for _, x := range d.Index {
		if _, err := b.exec(ctx, tx, sqlDocIndex, scope, d.Kind, x.Name, d.Key, x.Score); err != nil {
			return 0, fmt.Errorf("index document %s %q: %w", d.Kind, d.Key, err)
		}
	}
	return v + 1, nil
}

// commitInserts inserts the jobs of p, skipping (and reporting) the ones
// p allows to be skipped.
func (b *Broker) commitInserts(ctx context.Context, tx *sql.Tx, p *broker.CommitParams, now int64, res *broker.CommitResult) error {
	fi, err := b.fairInserts(ctx, tx, p.Scope)
	if err != nil {
		return err
	}
	res.Jobs = make([]*broker.Job, len(p.Insert))
	res.Skipped = make([]error, len(p.Insert))
	waiting := -1
	for i, in := range p.Insert {
		skip := func(err error, allowed bool) error {
			if !allowed {
				return fmt.Errorf("insert job %s: %w", in.Job.ID, err)
			}
			res.Skipped[i] = err
			return nil
		}
		if in.Job.MaxQueueLength > 0 {
			if waiting < 0 {
				if err := tx.QueryRowContext(ctx, sqlWaiting,
					p.Scope).Scan(&waiting); err != nil {
					return fmt.Errorf("count queue length: %w", err)
				}
			}
			if waiting+1 > in.Job.MaxQueueLength {
				full := fmt.Errorf("%w: %d jobs waiting, the limit is %d", broker.ErrQueueFull, waiting, in.Job.MaxQueueLength)
				if err := skip(full, in.Optional); err != nil {
					return err
				}
				continue
			}
		}
		j, args, err := newJob(in.Job, now)
		if err != nil {
			return err
		}
		tag, err := fi.arg(ctx, j)
		if err != nil {
			return err
		}
		if _, err := b.exec(ctx, tx, insertJobSQL, append(args, tag)...); err != nil {
			if !isConstraint(err) {
				return fmt.Errorf("insert job %s: %w", in.Job.ID, err)
			}
			dup := duplicateOf(ctx, tx, in.Job, err)
			var de *broker.DuplicateError
			if !errors.As(dup, &de) {
				return dup
			}
			if err := skip(dup, de.UniqueKey == "" && in.IfAbsent || de.UniqueKey != "" && in.Optional); err != nil {
				return err
			}
			continue
		}
		fi.inserted()
		res.Jobs[i] = j
		if waiting >= 0 {
			waiting++
		}
	}
	return fi.done(ctx, tx)
}

// DocGet reads one document; see broker.Committer.
func (b *Broker) DocGet(ctx context.Context, scope, kind, key string) (*broker.Doc, error) {
	op := fmt.Sprintf("get document %s %q in %q", kind, key, scope)
	if err := b.checkOpen(op); err != nil {
		return nil, err
	}
	if err := broker.ValidateQueueName(scope); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", op, broker.ErrInvalidJob, err)
	}
	if err := broker.ValidateDocKey(kind, key); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", op, broker.ErrInvalidJob, err)
	}
	d := &broker.Doc{Kind: kind, Key: key}
	var body []byte
	err := b.read.QueryRowContext(ctx, `SELECT version, body FROM docs WHERE scope = ? AND kind = ? AND key = ?`,
		scope, kind, key).Scan(&d.Version, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", op, broker.ErrDocNotFound)
	}
	if err != nil {
		return nil, b.fail(op, err)
	}
	d.Body = json.RawMessage(body)
	return d, nil
}

// DocList reads one page of an index; see broker.Committer.
func (b *Broker) DocList(ctx context.Context, p *broker.DocListParams) (*broker.DocListResult, error) {
	if err := b.checkOpen("list documents"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	lo, hi := int64(-1<<62), int64(1<<62)
	if p.Min != 0 {
		lo = p.Min
	}
	if p.Max != 0 {
		hi = p.Max
	}
	order := "x.score, x.key"
	if p.Desc {
		order = "x.score DESC, x.key DESC"
	}
	res := &broker.DocListResult{Now: b.opts.Now()}
	if err := b.read.QueryRowContext(ctx, `SELECT count(*) FROM doc_index WHERE scope = ? AND kind = ? AND name = ?
		AND score BETWEEN ? AND ?`, p.Scope, p.Kind, p.Index, lo, hi).Scan(&res.Total); err != nil {
		return nil, b.fail(fmt.Sprintf("count index %q in %q", p.Index, p.Scope), err)
	}
	rows, err := b.read.QueryContext(ctx, `SELECT d.key, d.version, d.body FROM doc_index x
		JOIN docs d ON d.scope = x.scope AND d.kind = x.kind AND d.key = x.key
		WHERE x.scope = ? AND x.kind = ? AND x.name = ? AND x.score BETWEEN ? AND ?
		ORDER BY `+order+` LIMIT ? OFFSET ?`, p.Scope, p.Kind, p.Index, lo, hi, limit, p.Offset)
	if err != nil {
		return nil, b.fail(fmt.Sprintf("list documents of index %q in %q", p.Index, p.Scope), err)
	}
	defer rows.Close()
	for rows.Next() {
		d := &broker.Doc{Kind: p.Kind}
		var body []byte
		if err := rows.Scan(&d.Key, &d.Version, &body); err != nil {
			return nil, b.fail("read document", err)
		}
		d.Body = json.RawMessage(body)
		res.Docs = append(res.Docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail(fmt.Sprintf("list documents of index %q in %q", p.Index, p.Scope), err)
	}
	return res, nil
}

// Now reads the broker's clock (Config.Now); see broker.Committer.
func (b *Broker) Now(ctx context.Context) (time.Time, error) {
	if err := b.checkOpen("read the clock"); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(b.now()), nil
}
