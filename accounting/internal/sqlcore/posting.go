package sqlcore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/aibos/worker/accounting"
)

// DocumentPost implements accounting.Store: the reversal of the previously
// posted version, the new entry and the idempotency row commit together or
// not at all.
func (s *Store) DocumentPost(ctx context.Context, b accounting.Books, kind accounting.DocumentKind, id string, version int) (*accounting.Posting, error) {
	var out *accounting.Posting
	err := s.write(ctx, true, func(tx *tx) error {
		if _, err := txCurrency(tx, b); err != nil {
			return err
		}
		if kind != accounting.Invoice && kind != accounting.Bill {
			return &accounting.InvalidError{Field: "kind", Reason: fmt.Sprintf("%q: want invoice or bill", kind)}
		}
		var err error
		if out, err = findPosting(tx, b, string(kind), id, version); err != nil || out != nil {
			return err
		}
		d, err := txLoadDocument(tx, b, kind, id, version)
		if err != nil {
			return err
		}
		out, err = postDocument(tx, b, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("post %s %q version %d in %s/%s: %w", kind, id, version, b.Tenant, b.Company, err)
	}
	return out, nil
}

// postDocument reverses the entry of the previously posted version of d,
// posts d's own entry unless d is void, and records the posting.
func postDocument(tx *tx, b accounting.Books, d *accounting.Document) (*accounting.Posting, error) {
	var prevVersion int
	var prevEntry int64
	err := tx.queryRow(`SELECT version, entry FROM postings WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4
		ORDER BY version DESC LIMIT 1`, b.Tenant, b.Company, string(d.Kind), d.ID).Scan(&prevVersion, &prevEntry)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if prevVersion > d.Version {
		return nil, fmt.Errorf("%w: version %d is already posted", accounting.ErrConflict, prevVersion)
	}
	total := d.Total
	if d.Status == accounting.Void {
		total = 0
	}
	var applied int64
	if d.Kind == accounting.Invoice {
		if err := tx.queryRow(`SELECT COALESCE(SUM(amount), 0) FROM applications WHERE tenant = $1 AND company = $2 AND invoice = $3`,
			b.Tenant, b.Company, d.ID).Scan(&applied); err != nil {
			return nil, err
		}
		if applied > total {
			return nil, fmt.Errorf("%w: payments of %d are applied to the invoice, more than the version's total %d", accounting.ErrConflict, applied, total)
		}
	}
	p := &accounting.Posting{Kind: string(d.Kind), ID: d.ID, Version: d.Version}
	if prevEntry != 0 {
		memo := fmt.Sprintf("reverse %s %s version %d", d.Kind, d.ID, prevVersion)
		if p.Reversal, err = reverse(tx, b, prevEntry, d.IssueDate, memo); err != nil {
			return nil, err
		}
	}
	if d.Status == accounting.Open {
		if lines := documentLines(d); len(lines) > 0 {
			e := accounting.JournalEntry{Date: d.IssueDate, Memo: fmt.Sprintf("%s %s version %d", d.Kind, d.ID, d.Version), Lines: lines}
			if p.Entry, err = insertEntry(tx, b, e); err != nil {
				return nil, err
			}
		}
		if d.Kind == accounting.Invoice {
			if p.Credit, err = applyCredit(tx, b, d, total-applied); err != nil {
				return nil, err
			}
		}
	}
	return p, recordPosting(tx, b, p)
}

// credit is what one posted payment left over for its customer.
type credit struct {
	payment string
	left    int64
}

// applyCredit settles up to open of invoice d from its customer's credit,
// oldest payment first: each payment's use is an application of that
// payment to d, and one entry moves the whole amount from customer credit
// to receivables. It returns the entry, or nil when the customer has no
// credit (or nothing is open).
func applyCredit(tx *tx, b accounting.Books, d *accounting.Document, open int64) (*accounting.JournalEntry, error) {
	if open <= 0 {
		return nil, nil
	}
	credits, err := customerCredits(tx, b, d.PartyID)
	if err != nil {
		return nil, err
	}
	used := int64(0)
	for _, c := range credits {
		amt := min(c.left, open-used)
		if amt <= 0 {
			break
		}
		// A payment applied to an earlier version of d adds to that row.
		if _, err := tx.exec(`INSERT INTO applications (tenant, company, payment, invoice, amount, line_no)
			VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(MAX(line_no), -1) + 1 FROM applications
				WHERE tenant = $1 AND company = $2 AND payment = $3))
			ON CONFLICT (tenant, company, payment, invoice) DO UPDATE SET amount = applications.amount + excluded.amount`,
			b.Tenant, b.Company, c.payment, d.ID, amt); err != nil {
			return nil, err
		}
		used += amt
	}
	if used == 0 {
		return nil, nil
	}
	e := accounting.JournalEntry{Date: d.IssueDate, Memo: fmt.Sprintf("customer credit applied to %s %s version %d", d.Kind, d.ID, d.Version),
		Lines: []accounting.EntryLine{
			{Account: accounting.AccountCustomerCredit, Debit: used, Currency: d.Currency},
			{Account: accounting.AccountReceivable, Credit: used, Currency: d.Currency},
		}}
	return insertEntry(tx, b, e)
}

// customerCredits returns what each posted payment of customer has left
// after its applications, oldest payment first, leaving out those used up.
func customerCredits(tx *tx, b accounting.Books, customer string) ([]credit, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	rows, err := tx.tx.QueryContext(tx.ctx, `SELECT p.id, p.amount - COALESCE((SELECT SUM(a.amount) FROM applications a
			WHERE a.tenant = p.tenant AND a.company = p.company AND a.payment = p.id), 0)
		FROM payments p JOIN postings s ON s.tenant = p.tenant AND s.company = p.company AND s.kind = 'payment' AND s.id = p.id
		WHERE p.tenant = $1 AND p.company = $2 AND p.customer = $3
		ORDER BY p.received, p.id`, b.Tenant, b.Company, customer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []credit
	for rows.Next() {
		var c credit
		if err := rows.Scan(&c.payment, &c.left); err != nil {
			return nil, err
		}
		if c.left > 0 {
			out = append(out, c)
		}
	}
	return out, rows.Err()
}

// documentLines returns the ledger lines of an invoice (receivable debit,
// revenue credits per account, tax-payable credit) or a bill (expense
// debits per account, tax-receivable debit, payable credit). Zero amounts
// are left out.
func documentLines(d *accounting.Document) []accounting.EntryLine {
	control, tax := accounting.AccountReceivable, accounting.AccountTaxPayable
	if d.Kind == accounting.Bill {
		control, tax = accounting.AccountPayable, accounting.AccountTaxReceivable
	}
	var order []string
	nets := map[string]int64{}
	for _, l := range d.Lines {
		if _, ok := nets[l.Account]; !ok {
			order = append(order, l.Account)
		}
		nets[l.Account] += l.Net
	}
	// side puts an amount on the debit side for a bill's lines and the
	// credit side for an invoice's; the control account takes the other.
	side := func(account string, amount int64, debit bool) accounting.EntryLine {
		l := accounting.EntryLine{Account: account, Currency: d.Currency}
		if debit {
			l.Debit = amount
		} else {
			l.Credit = amount
		}
		return l
	}
	isBill := d.Kind == accounting.Bill
	var out []accounting.EntryLine
	if d.Total > 0 {
		out = append(out, side(control, d.Total, !isBill))
	}
	for _, a := range order {
		if nets[a] > 0 {
			out = append(out, side(a, nets[a], isBill))
		}
	}
	if d.Tax > 0 {
		out = append(out, side(tax, d.Tax, isBill))
	}
	return out
}

// recordPosting writes the idempotency row of p, in the transaction of its
// entries.
func recordPosting(tx *tx, b accounting.Books, p *accounting.Posting) error {
	var entry, reversal, credit int64
	if p.Entry != nil {
		entry = p.Entry.ID
	}
	if p.Reversal != nil {
		reversal = p.Reversal.ID
	}
	if p.Credit != nil {
		credit = p.Credit.ID
	}
	_, err := tx.exec(`INSERT INTO postings (tenant, company, kind, id, version, entry, reversal, credit)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, b.Tenant, b.Company, p.Kind, p.ID, p.Version, entry, reversal, credit)
	return err
}

// findPosting returns the posting recorded for (kind, id, version), or nil.
func findPosting(tx *tx, b accounting.Books, kind, id string, version int) (*accounting.Posting, error) {
	var entry, reversal, credit int64
	err := tx.queryRow(`SELECT entry, reversal, credit FROM postings WHERE tenant = $1 AND company = $2 AND kind = $3 AND id = $4 AND version = $5`,
		b.Tenant, b.Company, kind, id, version).Scan(&entry, &reversal, &credit)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := tx.check(); err != nil {
		return nil, err
	}
	p := &accounting.Posting{Kind: kind, ID: id, Version: version}
	for _, e := range []struct {
		id  int64
		dst **accounting.JournalEntry
	}{{entry, &p.Entry}, {reversal, &p.Reversal}, {credit, &p.Credit}} {
		if e.id == 0 {
			continue
		}
		if *e.dst, err = loadEntry(tx.ctx, tx.tx, b, e.id); err != nil {
			return nil, err
		}
	}
	if kind == "payment" {
		p.Applications, err = applications(tx.ctx, tx.tx, b, id)
	}
	return p, err
}

// reverse posts the mirror image of entry id.
func reverse(tx *tx, b accounting.Books, id int64, date time.Time, memo string) (*accounting.JournalEntry, error) {
	if err := tx.check(); err != nil {
		return nil, err
	}
	prev, err := loadEntry(tx.ctx, tx.tx, b, id)
	if err != nil {
		return nil, err
	}
	e := accounting.JournalEntry{Date: date, Memo: memo, Reverses: id}
	for _, l := range prev.Lines {
		l.Debit, l.Credit = l.Credit, l.Debit
		e.Lines = append(e.Lines, l)
	}
	return insertEntry(tx, b, e)
}
