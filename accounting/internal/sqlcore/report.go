package sqlcore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/aibos/worker/accounting"
)

// TrialBalance implements accounting.Store.
func (s *Store) TrialBalance(ctx context.Context, b accounting.Books) ([]accounting.AccountBalance, error) {
	var out []accounting.AccountBalance
	err := s.read(ctx, func(rtx *sql.Tx) error {
		if _, err := currency(ctx, rtx, b); err != nil {
			return err
		}
		rows, err := rtx.QueryContext(ctx, `SELECT l.account, a.name, a.type, l.currency, SUM(l.debit), SUM(l.credit)
			FROM entry_lines l JOIN accounts a ON a.tenant = l.tenant AND a.company = l.company AND a.code = l.account
			WHERE l.tenant = $1 AND l.company = $2
			GROUP BY l.account, a.name, a.type, l.currency ORDER BY l.account, l.currency`, b.Tenant, b.Company)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r accounting.AccountBalance
			var typ string
			if err := rows.Scan(&r.Code, &r.Name, &typ, &r.Currency, &r.Debit, &r.Credit); err != nil {
				return err
			}
			r.Type = accounting.AccountType(typ)
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("trial balance of %s/%s: %w", b.Tenant, b.Company, err)
	}
	return out, nil
}

// AccountActivity implements accounting.Store.
func (s *Store) AccountActivity(ctx context.Context, b accounting.Books, account string) ([]accounting.ActivityLine, error) {
	var out []accounting.ActivityLine
	err := s.read(ctx, func(rtx *sql.Tx) error {
		if _, err := currency(ctx, rtx, b); err != nil {
			return err
		}
		var one int
		err := rtx.QueryRowContext(ctx, "SELECT 1 FROM accounts WHERE tenant = $1 AND company = $2 AND code = $3",
			b.Tenant, b.Company, account).Scan(&one)
		if err == sql.ErrNoRows {
			return accounting.ErrNotFound
		}
		if err != nil {
			return err
		}
		rows, err := rtx.QueryContext(ctx, `SELECT e.id, e.entry_date, e.memo, l.debit, l.credit, l.currency
			FROM entry_lines l JOIN entries e ON e.id = l.entry
			WHERE l.tenant = $1 AND l.company = $2 AND l.account = $3 ORDER BY e.id, l.line_no`, b.Tenant, b.Company, account)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a := accounting.ActivityLine{EntryLine: accounting.EntryLine{Account: account}}
			var date string
			if err := rows.Scan(&a.EntryID, &date, &a.Memo, &a.Debit, &a.Credit, &a.Currency); err != nil {
				return err
			}
			if a.Date, err = parseDate(date); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("activity of account %q in %s/%s: %w", account, b.Tenant, b.Company, err)
	}
	return out, nil
}

// OpenReceivables implements accounting.Store.
func (s *Store) OpenReceivables(ctx context.Context, b accounting.Books, asOf time.Time) ([]accounting.OpenItem, error) {
	return s.openReport(ctx, b, accounting.Invoice, asOf)
}

// OpenPayables implements accounting.Store.
func (s *Store) OpenPayables(ctx context.Context, b accounting.Books, asOf time.Time) ([]accounting.OpenItem, error) {
	return s.openReport(ctx, b, accounting.Bill, asOf)
}

func (s *Store) openReport(ctx context.Context, b accounting.Books, kind accounting.DocumentKind, asOf time.Time) ([]accounting.OpenItem, error) {
	var out []accounting.OpenItem
	err := s.read(ctx, func(rtx *sql.Tx) error {
		if _, err := currency(ctx, rtx, b); err != nil {
			return err
		}
		var err error
		out, err = openItems(ctx, rtx, b, kind, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open %ss of %s/%s: %w", kind, b.Tenant, b.Company, err)
	}
	day := accounting.Date(asOf)
	for i := range out {
		out[i].Bucket = bucket(int(day.Sub(out[i].Due).Hours() / 24))
	}
	return out, nil
}

// bucket names the aging bucket of an item overdue by days.
func bucket(days int) string {
	switch {
	case days <= 0:
		return "current"
	case days <= 30:
		return "1-30"
	case days <= 60:
		return "31-60"
	case days <= 90:
		return "61-90"
	}
	return "90+"
}

// openItems returns the posted documents of a kind (of one party, unless
// party is "") whose latest posted version has an entry and an open
// amount, oldest issue date first.
func openItems(ctx context.Context, q querier, b accounting.Books, kind accounting.DocumentKind, party string) ([]accounting.OpenItem, error) {
	rows, err := q.QueryContext(ctx, `SELECT d.id, d.version, d.party, d.currency, d.issue_date, d.due_date, d.total,
			CASE WHEN d.kind = 'invoice' THEN COALESCE((SELECT SUM(a.amount) FROM applications a
				WHERE a.tenant = d.tenant AND a.company = d.company AND a.invoice = d.id), 0) ELSE 0 END
		FROM postings p JOIN documents d ON d.tenant = p.tenant AND d.company = p.company AND d.kind = p.kind
			AND d.id = p.id AND d.version = p.version
		WHERE p.tenant = $1 AND p.company = $2 AND p.kind = $3 AND p.entry <> 0 AND ($4 = '' OR d.party = $4)
			AND p.version = (SELECT MAX(p2.version) FROM postings p2
				WHERE p2.tenant = p.tenant AND p2.company = p.company AND p2.kind = p.kind AND p2.id = p.id)
		ORDER BY d.issue_date, d.id`, b.Tenant, b.Company, string(kind), party)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounting.OpenItem
	for rows.Next() {
		it := accounting.OpenItem{Kind: kind}
		var issued, due string
		if err := rows.Scan(&it.ID, &it.Version, &it.PartyID, &it.Currency, &issued, &due, &it.Total, &it.Applied); err != nil {
			return nil, err
		}
		if it.Issued, err = parseDate(issued); err != nil {
			return nil, err
		}
		if it.Due, err = parseDate(due); err != nil {
			return nil, err
		}
		if it.Open = it.Total - it.Applied; it.Open > 0 {
			out = append(out, it)
		}
	}
	return out, rows.Err()
}
