package accounting

import (
	"fmt"
	"time"
)

// CheckID returns an *InvalidError unless id is a usable identifier:
// 1 to 200 bytes, no control characters.
func CheckID(field, id string) error {
	if id == "" || len(id) > 200 {
		return &InvalidError{field, fmt.Sprintf("%q: want 1 to 200 bytes", id)}
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return &InvalidError{field, fmt.Sprintf("%q: control characters are not allowed", id)}
		}
	}
	return nil
}

// Check returns an *InvalidError unless b names a tenant and a company.
func (b Books) Check() error {
	if err := CheckID("tenant", b.Tenant); err != nil {
		return err
	}
	return CheckID("company", b.Company)
}

// Date returns t's calendar date (in t's location) as UTC midnight, the form
// the store keeps dates in.
func Date(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Check validates the chart-of-accounts fields of a.
func (a Account) Check() error {
	if err := CheckID("account.code", a.Code); err != nil {
		return err
	}
	switch a.Type {
	case Asset, Liability, Equity, Revenue, Expense:
		return nil
	}
	return &InvalidError{"account.type", fmt.Sprintf("%q: want asset, liability, equity, revenue or expense", a.Type)}
}

// Check validates p's kind and id.
func (p Party) Check() error {
	if p.Kind != Customer && p.Kind != Vendor {
		return &InvalidError{"party.kind", fmt.Sprintf("%q: want customer or vendor", p.Kind)}
	}
	return CheckID("party.id", p.ID)
}

// Prepare validates d for a company keeping its books in currency, fills
// line account defaults and the due date, normalises dates and computes the
// totals with Calculate.
func (d *DocumentParams) Prepare(currency string) (Totals, error) {
	if d.Kind != Invoice && d.Kind != Bill {
		return Totals{}, &InvalidError{"kind", fmt.Sprintf("%q: want invoice or bill", d.Kind)}
	}
	if err := CheckID("id", d.ID); err != nil {
		return Totals{}, err
	}
	if err := CheckID("partyId", d.PartyID); err != nil {
		return Totals{}, err
	}
	if err := checkCurrency(d.Currency, currency); err != nil {
		return Totals{}, err
	}
	if d.IssueDate.IsZero() {
		return Totals{}, &InvalidError{"issueDate", "missing"}
	}
	d.IssueDate = Date(d.IssueDate)
	if d.DueDate.IsZero() {
		d.DueDate = d.IssueDate
	}
	d.DueDate = Date(d.DueDate)
	if d.DueDate.Before(d.IssueDate) {
		return Totals{}, &InvalidError{"dueDate", "before the issue date"}
	}
	if len(d.Lines) == 0 || len(d.Lines) > 1000 {
		return Totals{}, &InvalidError{"lines", fmt.Sprintf("%d lines: want 1 to 1000", len(d.Lines))}
	}
	lines := make([]Line, len(d.Lines)) // the caller's slice is left alone
	copy(lines, d.Lines)
	for i := range lines {
		if lines[i].Account == "" {
			lines[i].Account = AccountRevenue
			if d.Kind == Bill {
				lines[i].Account = AccountExpense
			}
		}
	}
	d.Lines = lines
	return Calculate(d.Lines)
}

// checkCurrency checks that code is a known currency and the books'.
func checkCurrency(code, books string) error {
	if _, err := MinorUnits(code); err != nil {
		return err
	}
	if code != books {
		return &InvalidError{"currency", fmt.Sprintf("%s: the company keeps its books in %s", code, books)}
	}
	return nil
}

// Check validates a payment for a company keeping its books in currency
// and normalises its date.
func (p *Payment) Check(currency string) error {
	if err := CheckID("id", p.ID); err != nil {
		return err
	}
	if err := CheckID("customerId", p.CustomerID); err != nil {
		return err
	}
	if err := checkCurrency(p.Currency, currency); err != nil {
		return err
	}
	if p.Amount <= 0 {
		return &InvalidError{"amount", fmt.Sprintf("%d: want minor units > 0", p.Amount)}
	}
	if p.Received.IsZero() {
		return &InvalidError{"received", "missing"}
	}
	p.Received = Date(p.Received)
	return nil
}

// Check validates a journal entry: a date, 2 to 1000 lines, each with an
// account, a currency and exactly one positive amount, and debits equal to
// credits in every currency (else ErrUnbalanced).
func (e *JournalEntry) Check() error {
	if e.Date.IsZero() {
		return &InvalidError{"date", "missing"}
	}
	e.Date = Date(e.Date)
	if len(e.Lines) < 2 || len(e.Lines) > 1000 {
		return &InvalidError{"lines", fmt.Sprintf("%d lines: want 2 to 1000", len(e.Lines))}
	}
	type sum struct{ debit, credit int64 }
	sums := map[string]sum{}
	for i, l := range e.Lines {
		field := func(f string) string { return fmt.Sprintf("lines[%d].%s", i, f) }
		if err := CheckID(field("account"), l.Account); err != nil {
			return err
		}
		if _, err := MinorUnits(l.Currency); err != nil {
			return &InvalidError{field("currency"), err.(*InvalidError).Reason}
		}
		if l.Debit < 0 || l.Credit < 0 || (l.Debit == 0) == (l.Credit == 0) {
			return &InvalidError{field("debit"), fmt.Sprintf("debit %d, credit %d: want exactly one of them positive", l.Debit, l.Credit)}
		}
		s := sums[l.Currency]
		var ok1, ok2 bool
		s.debit, ok1 = add(s.debit, l.Debit)
		s.credit, ok2 = add(s.credit, l.Credit)
		if !ok1 || !ok2 {
			return &InvalidError{field("debit"), "the entry's totals do not fit in 64 bits"}
		}
		sums[l.Currency] = s
	}
	for c, s := range sums {
		if s.debit != s.credit {
			return fmt.Errorf("%w: %s debits %d, credits %d", ErrUnbalanced, c, s.debit, s.credit)
		}
	}
	return nil
}
