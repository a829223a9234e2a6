package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"sort"
)

// The file names of a day's reports.
const (
	TrialBalanceCSV = "trial-balance.csv"
	TrialBalancePDF = "trial-balance.pdf"
	AgingCSV        = "receivables-aging.csv"
	AgingPDF        = "receivables-aging.pdf"
)

// TrialBalanceCSV writes the trial balance: one row per account and
// currency with debit, credit and balance in major units, then a total row
// per currency (whose balance is zero in balanced books).
func (r *Report) TrialBalanceCSV() ([]byte, error) {
	rows := [][]string{{"account", "name", "type", "currency", "debit", "credit", "balance"}}
	type tot struct{ d, c int64 }
	totals := map[string]*tot{}
	for _, b := range r.TrialBalance {
		rows = append(rows, []string{b.Code, b.Name, string(b.Type), b.Currency,
			amount(b.Debit, b.Currency), amount(b.Credit, b.Currency), amount(b.Balance(), b.Currency)})
		if totals[b.Currency] == nil {
			totals[b.Currency] = &tot{}
		}
		totals[b.Currency].d += b.Debit
		totals[b.Currency].c += b.Credit
	}
	for _, cur := range sortedKeys(totals) {
		t := totals[cur]
		rows = append(rows, []string{"total", "", "", cur, amount(t.d, cur), amount(t.c, cur), amount(t.d-t.c, cur)})
	}
	return writeCSV(rows)
}

// AgingCSV writes the receivables aging: one row per open invoice, then a
// total row per currency and bucket.
func (r *Report) AgingCSV() ([]byte, error) {
	rows := [][]string{{"invoice", "version", "customer", "currency", "issued", "due", "total", "applied", "open", "bucket"}}
	for _, it := range r.Aging {
		rows = append(rows, []string{it.ID, fmt.Sprint(it.Version), it.PartyID, it.Currency, day(it.Issued), day(it.Due),
			amount(it.Total, it.Currency), amount(it.Applied, it.Currency), amount(it.Open, it.Currency), it.Bucket})
	}
	totals := r.AgingTotals()
	for _, cur := range sortedKeys(totals) {
		for _, b := range Buckets {
			rows = append(rows, []string{"total", "", "", cur, "", "", "", "", amount(totals[cur][b], cur), b})
		}
	}
	return writeCSV(rows)
}

func writeCSV(rows [][]string) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("write csv: %w", err)
	}
	return buf.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// csvRows reads back the rows a CSV writer produced.
func csvRows(f func() ([]byte, error)) ([][]string, error) {
	b, err := f()
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read back csv: %w", err)
	}
	return rows, nil
}
