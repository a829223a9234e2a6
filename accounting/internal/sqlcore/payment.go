package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
)

// PaymentCreate implements accounting.Store.
func (s *Store) PaymentCreate(ctx context.Context, b accounting.Books, p accounting.Payment) (*accounting.Payment, error) {
	err := s.write(ctx, false, func(tx *tx) error {
		cur, err := txCurrency(tx, b)
		if err != nil {
			return err
		}
		if err := p.Check(cur); err != nil {
			return err
		}
		if err := exists(tx, fmt.Sprintf("customer %q", p.CustomerID),
			"SELECT 1 FROM parties WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4",
			b.Tenant, b.Company, string(accounting.Customer), p.CustomerID); err != nil {
			return err
		}
		_, err = tx.exec(`INSERT INTO payments (tenant, company, id, customer, currency, amount, received)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, b.Tenant, b.Company, p.ID, p.CustomerID, p.Currency, p.Amount, fmtDate(p.Received))
		return s.duplicate(err)
	})
	if err != nil {
		return nil, fmt.Errorf("create payment %q in %s/%s: %w", p.ID, b.Tenant, b.Company, err)
	}
	return &p, nil
}

// PaymentPost implements accounting.Store: the applications, the entry and
// the idempotency row commit together or not at all.
func (s *Store) PaymentPost(ctx context.Context, b accounting.Books, id string) (*accounting.Posting, error) {
	var out *accounting.Posting
	err := s.write(ctx, true, func(tx *tx) error {
		if _, err := txCurrency(tx, b); err != nil {
			return err
		}
		var err error
		if out, err = findPosting(tx, b, "payment", id, 1); err != nil || out != nil {
			return err
		}
		p := accounting.Payment{ID: id}
		var received string
		err = tx.queryRow("SELECT customer, currency, amount, received FROM payments WHERE tenant = $1 AND company = $2 AND id = $3",
			b.Tenant, b.Company, id).Scan(&p.CustomerID, &p.Currency, &p.Amount, &received)
		if errors.Is(err, sql.ErrNoRows) {
			return accounting.ErrNotFound
		}
		if err != nil {
			return err
		}
		if p.Received, err = parseDate(received); err != nil {
			return err
		}
		out, err = postPayment(tx, b, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("post payment %q in %s/%s: %w", id, b.Tenant, b.Company, err)
	}
	return out, nil
}

// postPayment applies p to the customer's open invoices, oldest first,
// posts cash against receivables and customer credit, and records the
// posting.
func postPayment(tx *tx, b accounting.Books, p accounting.Payment) (*accounting.Posting, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	open, err := openItems(tx.ctx, tx.tx, b, accounting.Invoice, p.CustomerID)
	if err != nil {
		return nil, err
	}
	post := &accounting.Posting{Kind: "payment", ID: p.ID, Version: 1}
	left := p.Amount
	for i, it := range open {
		if left == 0 {
			break
		}
		amt := min(left, it.Open)
		if _, err := tx.exec("INSERT INTO applications (tenant, company, payment, invoice, amount, line_no) VALUES ($1, $2, $3, $4, $5, $6)",
			b.Tenant, b.Company, p.ID, it.ID, amt, i); err != nil {
			return nil, err
		}
		post.Applications = append(post.Applications, accounting.Application{InvoiceID: it.ID, Amount: amt})
		left -= amt
	}
	lines := []accounting.EntryLine{{Account: accounting.AccountCash, Debit: p.Amount, Currency: p.Currency}}
	if applied := p.Amount - left; applied > 0 {
		lines = append(lines, accounting.EntryLine{Account: accounting.AccountReceivable, Credit: applied, Currency: p.Currency})
	}
	if left > 0 {
		lines = append(lines, accounting.EntryLine{Account: accounting.AccountCustomerCredit, Credit: left, Currency: p.Currency})
	}
	e := accounting.JournalEntry{Date: p.Received, Memo: fmt.Sprintf("payment %s from %s", p.ID, p.CustomerID), Lines: lines}
	if post.Entry, err = insertEntry(tx, b, e); err != nil {
		return nil, err
	}
	return post, recordPosting(tx, b, post)
}

// applications returns what a posted payment was applied to, oldest first.
func applications(ctx context.Context, q querier, b accounting.Books, payment string) ([]accounting.Application, error) {
	rows, err := q.QueryContext(ctx, `SELECT invoice, amount FROM applications
		WHERE tenant = $1 AND company = $2 AND payment = $3 ORDER BY line_no`, b.Tenant, b.Company, payment)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounting.Application
	for rows.Next() {
		var a accounting.Application
		if err := rows.Scan(&a.InvoiceID, &a.Amount); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
