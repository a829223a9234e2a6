package sqlitebroker

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

var _ broker.LeaderStore = (*Broker)(nil)

// sqlLeaderAcquire is compiled once at Open (cachedQueries): a Manager's
// maintenance takes or extends a lease per queue it serves.
const sqlLeaderAcquire = `INSERT INTO leaders (name, holder, until) VALUES (?1, ?2, ?3)
	ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
	WHERE leaders.holder = excluded.holder OR leaders.until <= ?4
	RETURNING holder`

// LeaderAcquire takes or extends a named lease; see broker.LeaderStore.
// One statement decides: the row is written only when it is free, expired
// or already the caller's, and RETURNING yields a row only then.
func (b *Broker) LeaderAcquire(ctx context.Context, p *broker.LeaderParams) (bool, error) {
	const op = "acquire leader lease"
	if err := b.checkOpen(op); err != nil {
		return false, err
	}
	if err := p.Validate(true); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	held := false
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		var holder string
		row, err := b.queryRow(ctx, tx, sqlLeaderAcquire, p.Name, p.Holder, now+p.TTL.Milliseconds(), now)
		if err == nil {
			err = row.Scan(&holder)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		held = err == nil
		return err
	})
	if err != nil {
		return false, b.fail(fmt.Sprintf("%s %q", op, p.Name), err)
	}
	return held, nil
}

// LeaderRelease gives a named lease up if p.Holder holds it; see
// broker.LeaderStore.
func (b *Broker) LeaderRelease(ctx context.Context, p *broker.LeaderParams) error {
	const op = "release leader lease"
	if err := b.checkOpen(op); err != nil {
		return err
	}
	if err := p.Validate(false); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err := b.inLeaseTx(ctx, func(ctx context.Context, tx *sql.Tx, now int64) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM leaders WHERE name = ? AND holder = ?`, p.Name, p.Holder)
		return err
	})
	if err != nil {
		return b.fail(fmt.Sprintf("%s %q", op, p.Name), err)
	}
	return nil
}
