package sqlitebroker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aibos/worker/broker"
)

// JobRewrite rewrites a job's stored values, each only if it still holds
// its Old, in one transaction. See broker.JobRewriter.
func (b *Broker) JobRewrite(ctx context.Context, p *broker.JobRewriteParams) error {
	const op = "rewrite job"
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err := b.inTx(ctx, func(ctx context.Context, tx *sql.Tx, _ int64) error {
		var data, result, progress []byte
		var lastErr string
		var hist sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT data, result, progress, last_error, attempts FROM jobs WHERE queue = ? AND id = ?`,
			p.Queue, p.ID).Scan(&data, &result, &progress, &lastErr, &hist)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("job %s in %q: %w", p.ID, p.Queue, broker.ErrNotFound)
		}
		if err != nil {
			return err
		}
		d, r, pg := string(data), string(result), string(progress)
		vals := []*string{&d, &r, &pg, &lastErr}
		for i, v := range []*broker.ValueRewrite{p.Data, p.Result, p.Progress, p.LastError} {
			if v == nil {
				continue
			}
			if *vals[i] != v.Old {
				return fmt.Errorf("job %s in %q: a value changed since it was read: %w", p.ID, p.Queue, broker.ErrConflict)
			}
			*vals[i] = v.New
		}
		if len(p.Attempts) > 0 {
			h, err := rewriteHistory(hist.String, p.Attempts)
			if err != nil {
				return fmt.Errorf("job %s in %q: %w", p.ID, p.Queue, err)
			}
			hist = sql.NullString{String: h, Valid: true}
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET data = ?, result = ?, progress = ?, last_error = ?, attempts = ?
			WHERE queue = ? AND id = ?`, nullBlob([]byte(*vals[0])), nullBlob([]byte(*vals[1])), nullBlob([]byte(*vals[2])), lastErr, hist, p.Queue, p.ID)
		return err
	})
	if err != nil {
		return b.fail(op, err)
	}
	return nil
}

// rewriteHistory returns the attempts column hist with the errors of the
// entries rw names replaced, each only if it is its Old; every other entry
// is kept byte for byte. It fails with ErrConflict otherwise.
func rewriteHistory(hist string, rw map[int]*broker.ValueRewrite) (string, error) {
	var entries []json.RawMessage
	if hist != "" {
		if err := json.Unmarshal([]byte(hist), &entries); err != nil {
			return "", fmt.Errorf("decode attempt history: %w", err)
		}
	}
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = string(e)
	}
	for i, v := range rw {
		if i >= len(entries) {
			return "", fmt.Errorf("attempt %d is not in the history: %w", i, broker.ErrConflict)
		}
		var elems []json.RawMessage
		var old string
		if err := json.Unmarshal(entries[i], &elems); err != nil || len(elems) != 6 || json.Unmarshal(elems[5], &old) != nil || old != v.Old {
			return "", fmt.Errorf("attempt %d's error changed since it was read: %w", i, broker.ErrConflict)
		}
		quoted, err := json.Marshal(v.New)
		if err != nil {
			return "", fmt.Errorf("encode attempt %d's error: %w", i, err)
		}
		elems[5] = quoted
		var sb strings.Builder
		sb.WriteByte('[')
		for k, el := range elems {
			if k > 0 {
				sb.WriteByte(',')
			}
			sb.Write(el)
		}
		sb.WriteByte(']')
		parts[i] = sb.String()
	}
	return "[" + strings.Join(parts, ",") + "]", nil
}

// Scrub rebuilds the database file (VACUUM) and empties the write-ahead
// log, so that values overwritten by JobRewrite (or deleted) no longer
// sit in freed pages or old log frames. See broker.Scrubber. Writers wait
// while it runs: its cost is a copy of the database.
func (b *Broker) Scrub(ctx context.Context) error {
	const op = "scrub store"
	if err := b.checkOpen(op); err != nil {
		return err
	}
	for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := b.write.ExecContext(ctx, q); err != nil {
			return b.fail(op, fmt.Errorf("%s: %w", q, err))
		}
	}
	return nil
}
