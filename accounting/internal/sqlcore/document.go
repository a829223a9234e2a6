package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/aibos/worker/accounting"
)

// DocumentCreate implements accounting.Store.
func (s *Store) DocumentCreate(ctx context.Context, b accounting.Books, d accounting.DocumentParams) (*accounting.Document, error) {
	out, err := s.writeVersion(ctx, b, d, false)
	if err != nil {
		return nil, fmt.Errorf("create %s %q in %s/%s: %w", d.Kind, d.ID, b.Tenant, b.Company, err)
	}
	return out, nil
}

// DocumentUpdate implements accounting.Store.
func (s *Store) DocumentUpdate(ctx context.Context, b accounting.Books, d accounting.DocumentParams) (*accounting.Document, error) {
	out, err := s.writeVersion(ctx, b, d, true)
	if err != nil {
		return nil, fmt.Errorf("update %s %q version %d in %s/%s: %w", d.Kind, d.ID, d.Version, b.Tenant, b.Company, err)
	}
	return out, nil
}

// writeVersion stores d as version 1 of a new document, or, with update,
// as the version after d.Version, which must be the latest.
func (s *Store) writeVersion(ctx context.Context, b accounting.Books, d accounting.DocumentParams, update bool) (*accounting.Document, error) {
	var out *accounting.Document
	err := s.write(ctx, false, func(tx *tx) error {
		cur, err := txCurrency(tx, b)
		if err != nil {
			return err
		}
		p := d
		totals, err := p.Prepare(cur)
		if err != nil {
			return err
		}
		version := 1
		if update {
			if err := checkLatest(tx, b, p.Kind, p.ID, p.Version); err != nil {
				return err
			}
			version = p.Version + 1
		}
		out, err = s.insertDocument(tx, b, p, version, accounting.Open, totals)
		return err
	})
	return out, err
}

// DocumentVoid implements accounting.Store.
func (s *Store) DocumentVoid(ctx context.Context, b accounting.Books, kind accounting.DocumentKind, id string, version int) (*accounting.Document, error) {
	var out *accounting.Document
	err := s.write(ctx, false, func(tx *tx) error {
		if _, err := txCurrency(tx, b); err != nil {
			return err
		}
		if err := checkLatest(tx, b, kind, id, version); err != nil {
			return err
		}
		d, err := txLoadDocument(tx, b, kind, id, version)
		if err != nil {
			return err
		}
		p := accounting.DocumentParams{Kind: kind, ID: id, PartyID: d.PartyID, Currency: d.Currency,
			IssueDate: d.IssueDate, DueDate: d.DueDate, Lines: d.Lines}
		out, err = s.insertDocument(tx, b, p, version+1, accounting.Void, d.Totals)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("void %s %q version %d in %s/%s: %w", kind, id, version, b.Tenant, b.Company, err)
	}
	return out, nil
}

// checkLatest returns ErrNotFound if the document does not exist and
// ErrConflict unless version is its latest version and not void.
func checkLatest(tx *tx, b accounting.Books, kind accounting.DocumentKind, id string, version int) error {
	var latest int
	var status string
	err := tx.queryRow(`SELECT version, status FROM documents WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4
		ORDER BY version DESC LIMIT 1`, b.Tenant, b.Company, string(kind), id).Scan(&latest, &status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounting.ErrNotFound
	case err != nil:
		return err
	case latest != version:
		return fmt.Errorf("%w: the latest version is %d", accounting.ErrConflict, latest)
	case status == string(accounting.Void):
		return fmt.Errorf("%w: the document is void", accounting.ErrConflict)
	}
	return nil
}

// insertDocument stores one version, after checking that its party and
// accounts exist.
func (s *Store) insertDocument(tx *tx, b accounting.Books, p accounting.DocumentParams, version int,
	status accounting.Status, t accounting.Totals) (*accounting.Document, error) {
	party := accounting.Customer
	if p.Kind == accounting.Bill {
		party = accounting.Vendor
	}
	if err := exists(tx, fmt.Sprintf("%s %q", party, p.PartyID),
		"SELECT 1 FROM parties WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4",
		b.Tenant, b.Company, string(party), p.PartyID); err != nil {
		return nil, err
	}
	for i, l := range p.Lines {
		if err := exists(tx, fmt.Sprintf("lines[%d].account %q", i, l.Account),
			"SELECT 1 FROM accounts WHERE tenant = $1 AND company = $2 AND code = $3",
			b.Tenant, b.Company, l.Account); err != nil {
			return nil, err
		}
	}
	_, err := tx.exec(`INSERT INTO documents (tenant, company, kind, id, version, status, party, currency,
		issue_date, due_date, subtotal, tax, total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		b.Tenant, b.Company, string(p.Kind), p.ID, version, string(status), p.PartyID, p.Currency,
		fmtDate(p.IssueDate), fmtDate(p.DueDate), t.Subtotal, t.Tax, t.Total)
	if err != nil {
		return nil, s.duplicate(err)
	}
	for i, l := range p.Lines {
		_, err := tx.exec(`INSERT INTO document_lines (tenant, company, kind, id, version, line_no, description,
			account, quantity, unit_price, discount, tax_rate, net, tax) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			b.Tenant, b.Company, string(p.Kind), p.ID, version, i, l.Description,
			l.Account, l.Quantity, l.UnitPrice, l.Discount, l.TaxRate, l.Net, l.Tax)
		if err != nil {
			return nil, err
		}
	}
	return &accounting.Document{Kind: p.Kind, ID: p.ID, Version: version, Status: status, PartyID: p.PartyID,
		Currency: p.Currency, IssueDate: p.IssueDate, DueDate: p.DueDate, Lines: p.Lines, Totals: t}, nil
}

// DocumentGet implements accounting.Store.
func (s *Store) DocumentGet(ctx context.Context, b accounting.Books, kind accounting.DocumentKind, id string, version int) (*accounting.Document, error) {
	var d *accounting.Document
	err := b.Check()
	if err == nil {
		err = s.read(ctx, func(rtx *sql.Tx) error {
			if version == 0 {
				err := rtx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM documents
					WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4`,
					b.Tenant, b.Company, string(kind), id).Scan(&version)
				if err != nil {
					return err
				}
			}
			var err error
			d, err = loadDocument(ctx, rtx, b, kind, id, version)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %q version %d in %s/%s: %w", kind, id, version, b.Tenant, b.Company, err)
	}
	return d, nil
}

// txLoadDocument is loadDocument inside a write transaction.
func txLoadDocument(tx *tx, b accounting.Books, kind accounting.DocumentKind, id string, version int) (*accounting.Document, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	return loadDocument(tx.ctx, tx.tx, b, kind, id, version)
}

// loadDocument reads one version with its lines; ErrNotFound if missing.
func loadDocument(ctx context.Context, q querier, b accounting.Books, kind accounting.DocumentKind, id string, version int) (*accounting.Document, error) {
	d := accounting.Document{Kind: kind, ID: id, Version: version}
	var status, issued, due string
	err := q.QueryRowContext(ctx, `SELECT status, party, currency, issue_date, due_date, subtotal, tax, total
		FROM documents WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4 AND version = $5`,
		b.Tenant, b.Company, string(kind), id, version).Scan(&status, &d.PartyID, &d.Currency, &issued, &due,
		&d.Subtotal, &d.Tax, &d.Total)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, accounting.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d.Status = accounting.Status(status)
	if d.IssueDate, err = parseDate(issued); err != nil {
		return nil, err
	}
	if d.DueDate, err = parseDate(due); err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT description, account, quantity, unit_price, discount, tax_rate, net, tax
		FROM document_lines WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4 AND version = $5 ORDER BY line_no`,
		b.Tenant, b.Company, string(kind), id, version)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var l accounting.Line
		if err := rows.Scan(&l.Description, &l.Account, &l.Quantity, &l.UnitPrice, &l.Discount, &l.TaxRate, &l.Net, &l.Tax); err != nil {
			return nil, err
		}
		d.Lines = append(d.Lines, l)
	}
	return &d, rows.Err()
}
