package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
)

// controlAccounts are kept by the posting rules alone: a manual entry on
// them would make receivables, payables or customer credit disagree with
// the documents.
var controlAccounts = map[string]bool{
	accounting.AccountReceivable:     true,
	accounting.AccountPayable:        true,
	accounting.AccountCustomerCredit: true,
}

// JournalPost implements accounting.Store.
func (s *Store) JournalPost(ctx context.Context, b accounting.Books, e accounting.JournalEntry) (*accounting.JournalEntry, error) {
	var out *accounting.JournalEntry
	err := s.write(ctx, false, func(tx *tx) error {
		if _, err := txCurrency(tx, b); err != nil {
			return err
		}
		for i, l := range e.Lines {
			if controlAccounts[l.Account] {
				return &accounting.InvalidError{Field: fmt.Sprintf("lines[%d].account", i),
					Reason: fmt.Sprintf("%s is a control account: post invoices, bills and payments instead", l.Account)}
			}
		}
		e.Reverses = 0
		var err error
		out, err = insertEntry(tx, b, e)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("post journal entry in %s/%s: %w", b.Tenant, b.Company, err)
	}
	return out, nil
}

// insertEntry checks e (balance, accounts) and stores it.
func insertEntry(tx *tx, b accounting.Books, e accounting.JournalEntry) (*accounting.JournalEntry, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	for i, l := range e.Lines {
		if err := exists(tx, fmt.Sprintf("lines[%d].account %q", i, l.Account),
			"SELECT 1 FROM accounts WHERE tenant = $1 AND company = $2 AND code = $3",
			b.Tenant, b.Company, l.Account); err != nil {
			return nil, err
		}
	}
	// Taking the next seq writes the company's row: concurrent postings to
	// one company serialise on it, so seqs commit in order.
	err := tx.queryRow("UPDATE companies SET last_seq = last_seq + 1 WHERE tenant = $1 AND id = $2 RETURNING last_seq",
		b.Tenant, b.Company).Scan(&e.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("company %s: %w", b.Company, accounting.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	err = tx.queryRow(`INSERT INTO entries (tenant, company, entry_date, memo, reverses, seq) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		b.Tenant, b.Company, fmtDate(e.Date), e.Memo, e.Reverses, e.Seq).Scan(&e.ID)
	if err != nil {
		return nil, err
	}
	for i, l := range e.Lines {
		_, err := tx.exec(`INSERT INTO entry_lines (entry, line_no, tenant, company, account, debit, credit, currency)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.ID, i, b.Tenant, b.Company, l.Account, l.Debit, l.Credit, l.Currency)
		if err != nil {
			return nil, err
		}
	}
	return &e, nil
}

// loadEntry reads an entry of the books; ErrNotFound if there is none.
func loadEntry(ctx context.Context, q querier, b accounting.Books, id int64) (*accounting.JournalEntry, error) {
	e := accounting.JournalEntry{ID: id}
	var date string
	err := q.QueryRowContext(ctx, "SELECT entry_date, memo, reverses, seq FROM entries WHERE tenant = $1 AND company = $2 AND id = $3",
		b.Tenant, b.Company, id).Scan(&date, &e.Memo, &e.Reverses, &e.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("journal entry %d: %w", id, accounting.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if e.Date, err = parseDate(date); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT account, debit, credit, currency FROM entry_lines
		WHERE tenant = $1 AND company = $2 AND entry = $3 ORDER BY line_no`, b.Tenant, b.Company, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var l accounting.EntryLine
		if err := rows.Scan(&l.Account, &l.Debit, &l.Credit, &l.Currency); err != nil {
			return nil, err
		}
		e.Lines = append(e.Lines, l)
	}
	return &e, rows.Err()
}

// JournalGet implements accounting.Store.
func (s *Store) JournalGet(ctx context.Context, b accounting.Books, id int64) (*accounting.JournalEntry, error) {
	var e *accounting.JournalEntry
	err := b.Check()
	if err == nil {
		e, err = loadEntry(ctx, s.db, b, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get journal entry %d in %s/%s: %w", id, b.Tenant, b.Company, err)
	}
	return e, nil
}

// JournalCount implements accounting.Store.
func (s *Store) JournalCount(ctx context.Context, b accounting.Books) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM entries WHERE tenant = $1 AND company = $2", b.Tenant, b.Company).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count journal entries in %s/%s: %w", b.Tenant, b.Company, err)
	}
	return n, nil
}
