package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
)

// maxSince bounds one JournalSince page.
const maxSince = 1000

// JournalSince implements accounting.Store.
func (s *Store) JournalSince(ctx context.Context, b accounting.Books, after int64, limit int) ([]accounting.JournalEntry, error) {
	var out []accounting.JournalEntry
	err := b.Check()
	switch {
	case err != nil:
	case limit < 1 || limit > maxSince:
		err = &accounting.InvalidError{Field: "limit", Reason: fmt.Sprintf("%d is outside 1..%d", limit, maxSince)}
	case after < 0:
		err = &accounting.InvalidError{Field: "after", Reason: fmt.Sprintf("%d is negative", after)}
	default:
		err = s.read(ctx, func(rtx *sql.Tx) error {
			var err error
			out, err = entriesSince(ctx, rtx, b, after, limit)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list journal entries after seq %d in %s/%s: %w", after, b.Tenant, b.Company, err)
	}
	return out, nil
}

// entriesSince reads a page of entries with their lines in one snapshot.
func entriesSince(ctx context.Context, q querier, b accounting.Books, after int64, limit int) ([]accounting.JournalEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, seq, entry_date, memo, reverses FROM entries
		WHERE tenant = $1 AND company = $2 AND seq > $3 ORDER BY seq LIMIT $4`, b.Tenant, b.Company, after, limit)
	if err != nil {
		return nil, err
	}
	var out []accounting.JournalEntry
	byID := map[int64]int{}
	for rows.Next() {
		var e accounting.JournalEntry
		var date string
		if err := rows.Scan(&e.ID, &e.Seq, &date, &e.Memo, &e.Reverses); err != nil {
			rows.Close()
			return nil, err
		}
		if e.Date, err = parseDate(date); err != nil {
			rows.Close()
			return nil, err
		}
		byID[e.ID] = len(out)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	lines, err := q.QueryContext(ctx, `SELECT l.entry, l.account, l.debit, l.credit, l.currency
		FROM entry_lines l JOIN entries e ON e.id = l.entry
		WHERE e.tenant = $1 AND e.company = $2 AND e.seq > $3 AND e.seq <= $4 ORDER BY l.entry, l.line_no`,
		b.Tenant, b.Company, after, out[len(out)-1].Seq)
	if err != nil {
		return nil, err
	}
	defer lines.Close()
	for lines.Next() {
		var id int64
		var l accounting.EntryLine
		if err := lines.Scan(&id, &l.Account, &l.Debit, &l.Credit, &l.Currency); err != nil {
			return nil, err
		}
		if i, ok := byID[id]; ok {
			out[i].Lines = append(out[i].Lines, l)
		}
	}
	return out, lines.Err()
}

// CursorGet implements accounting.Store.
func (s *Store) CursorGet(ctx context.Context, b accounting.Books, name string) (int64, error) {
	var seq int64
	err := checkCursor(b, name)
	if err == nil {
		err = s.db.QueryRowContext(ctx, "SELECT seq FROM sync_cursors WHERE tenant = $1 AND company = $2 AND name = $3",
			b.Tenant, b.Company, name).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor %q of %s/%s: %w", name, b.Tenant, b.Company, err)
	}
	return seq, nil
}

// CursorAdvance implements accounting.Store.
func (s *Store) CursorAdvance(ctx context.Context, b accounting.Books, name string, from, to int64) error {
	err := checkCursor(b, name)
	if err == nil && (from < 0 || to <= from) {
		err = &accounting.InvalidError{Field: "to", Reason: fmt.Sprintf("%d is not above %d", to, from)}
	}
	if err == nil {
		err = s.write(ctx, true, func(tx *tx) error {
			var at int64
			err := tx.queryRow("SELECT seq FROM sync_cursors WHERE tenant = $1 AND company = $2 AND name = $3",
				b.Tenant, b.Company, name).Scan(&at)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if from != 0 {
					return fmt.Errorf("cursor is at 0, not %d: %w", from, accounting.ErrConflict)
				}
				_, err = tx.exec("INSERT INTO sync_cursors (tenant, company, name, seq) VALUES ($1, $2, $3, $4)",
					b.Tenant, b.Company, name, to)
				return err
			case err != nil:
				return err
			case at != from:
				return fmt.Errorf("cursor is at %d, not %d: %w", at, from, accounting.ErrConflict)
			}
			_, err = tx.exec("UPDATE sync_cursors SET seq = $1 WHERE tenant = $2 AND company = $3 AND name = $4",
				to, b.Tenant, b.Company, name)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("advance cursor %q of %s/%s from %d to %d: %w", name, b.Tenant, b.Company, from, to, err)
	}
	return nil
}

func checkCursor(b accounting.Books, name string) error {
	if err := b.Check(); err != nil {
		return err
	}
	if name == "" {
		return &accounting.InvalidError{Field: "name", Reason: "the cursor needs a name"}
	}
	return nil
}
