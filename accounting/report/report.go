// Package report builds the daily accounting reports of one company's
// books, a trial balance and a receivables aging, writes each as CSV and
// PDF, and keeps the files in a directory tree (Dir) per tenant, company
// and date.
package report

import (
	"context"
	"fmt"
	"time"

	"github.com/aibos/worker/accounting"
)

// Report is the daily reports of one company's books at one date.
type Report struct {
	Company accounting.Company
	// Date is the day the reports are as of (a date: UTC midnight).
	Date         time.Time
	TrialBalance []accounting.AccountBalance
	Aging        []accounting.OpenItem
}

// Build reads the reports of books as of date from store.
func Build(ctx context.Context, store accounting.Store, books accounting.Books, date time.Time) (*Report, error) {
	c, err := store.CompanyGet(ctx, books)
	if err != nil {
		return nil, fmt.Errorf("build reports of %s/%s: %w", books.Tenant, books.Company, err)
	}
	tb, err := store.TrialBalance(ctx, books)
	if err != nil {
		return nil, fmt.Errorf("build reports of %s/%s: trial balance: %w", books.Tenant, books.Company, err)
	}
	ar, err := store.OpenReceivables(ctx, books, date)
	if err != nil {
		return nil, fmt.Errorf("build reports of %s/%s: receivables: %w", books.Tenant, books.Company, err)
	}
	return &Report{Company: *c, Date: date, TrialBalance: tb, Aging: ar}, nil
}

// Buckets are the aging buckets in report order.
var Buckets = []string{"current", "1-30", "31-60", "61-90", "90+"}

// AgingTotals returns the open amount per bucket, per currency.
func (r *Report) AgingTotals() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for _, it := range r.Aging {
		if out[it.Currency] == nil {
			out[it.Currency] = map[string]int64{}
		}
		out[it.Currency][it.Bucket] += it.Open
	}
	return out
}

// amount formats minor units in currency, or the raw number for a
// currency the ledger should never have let in.
func amount(minor int64, currency string) string {
	s, err := accounting.FormatAmount(minor, currency)
	if err != nil {
		return fmt.Sprint(minor)
	}
	return s
}
