package report_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/accounting/sqlitestore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var books = accounting.Books{Tenant: "t1", Company: "c1"}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// Fixture posts a known ledger: invoice A (1,000.00 + 20 % tax, due
// 2026-01-31), invoice B (2 × 250.00, no tax, due 2026-03-31) and a
// payment of 300.00, which settles part of A (the oldest).
func Fixture(t *testing.T) accounting.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = st.CompanyCreate(ctx, accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Müller & Söhne GmbH", Currency: "EUR"})
	must(err)
	must(st.PartyCreate(ctx, books, accounting.Party{Kind: accounting.Customer, ID: "cust-1", Name: "Northwind"}))
	for _, d := range []accounting.DocumentParams{
		{Kind: accounting.Invoice, ID: "INV-A", PartyID: "cust-1", Currency: "EUR", IssueDate: date("2026-01-01"), DueDate: date("2026-01-31"),
			Lines: []accounting.Line{{Description: "Audit", Quantity: 1, UnitPrice: 100000, TaxRate: 2000}}},
		{Kind: accounting.Invoice, ID: "INV-B", PartyID: "cust-1", Currency: "EUR", IssueDate: date("2026-03-01"), DueDate: date("2026-03-31"),
			Lines: []accounting.Line{{Description: "Advice", Quantity: 2, UnitPrice: 25000}}},
	} {
		_, err := st.DocumentCreate(ctx, books, d)
		must(err)
		_, err = st.DocumentPost(ctx, books, d.Kind, d.ID, 1)
		must(err)
	}
	_, err = st.PaymentCreate(ctx, books, accounting.Payment{ID: "PAY-1", CustomerID: "cust-1", Currency: "EUR", Amount: 30000, Received: date("2026-02-10")})
	must(err)
	_, err = st.PaymentPost(ctx, books, "PAY-1")
	must(err)
	return st
}

func TestReportFiguresInCSVAndPDF(t *testing.T) {
	st := Fixture(t)
	r, err := report.Build(context.Background(), st, books, date("2026-03-15"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := r.TrialBalanceCSV()
	if err != nil {
		t.Fatal(err)
	}
	wantTB := []string{
		"account,name,type,currency,debit,credit,balance",
		"1000,Cash,asset,EUR,300.00,0.00,300.00",
		"1200,Accounts receivable,asset,EUR,1700.00,300.00,1400.00",
		"2200,Tax payable,liability,EUR,0.00,200.00,-200.00",
		"4000,Revenue,revenue,EUR,0.00,1500.00,-1500.00",
		"total,,,EUR,2000.00,2000.00,0.00",
	}
	if got := strings.TrimSpace(string(tb)); got != strings.Join(wantTB, "\n") {
		t.Errorf("trial balance CSV:\n%s\nwant:\n%s", got, strings.Join(wantTB, "\n"))
	}
	aging, err := r.AgingCSV()
	if err != nil {
		t.Fatal(err)
	}
	wantAging := []string{
		"invoice,version,customer,currency,issued,due,total,applied,open,bucket",
		"INV-A,1,cust-1,EUR,2026-01-01,2026-01-31,1200.00,300.00,900.00,31-60",
		"INV-B,1,cust-1,EUR,2026-03-01,2026-03-31,500.00,0.00,500.00,current",
		"total,,,EUR,,,,,500.00,current",
		"total,,,EUR,,,,,0.00,1-30",
		"total,,,EUR,,,,,900.00,31-60",
		"total,,,EUR,,,,,0.00,61-90",
		"total,,,EUR,,,,,0.00,90+",
	}
	if got := strings.TrimSpace(string(aging)); got != strings.Join(wantAging, "\n") {
		t.Errorf("aging CSV:\n%s\nwant:\n%s", got, strings.Join(wantAging, "\n"))
	}
	tbPDF, err := r.TrialBalancePDF()
	if err != nil {
		t.Fatal(err)
	}
	agingPDF, err := r.AgingPDF()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pdf  []byte
		want []string
	}{
		{tbPDF, []string{"Trial balance", "Müller & Söhne GmbH", "as of 2026-03-15", "1700.00", "1400.00", "-1500.00", "2000.00"}},
		{agingPDF, []string{"Receivables aging", "INV-A", "900.00", "31-60", "INV-B", "500.00", "current"}},
	} {
		text := pdfText(t, c.pdf)
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("PDF text lacks %q:\n%s", w, text)
			}
		}
	}
}

// pdfText extracts a PDF's text with pdftotext (Debian poppler-utils;
// scripts/ensure-pdftotext.sh installs it for make test).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pdftotext not found: run scripts/ensure-pdftotext.sh (Debian: apt-get install poppler-utils)")
		}
		t.Skip("pdftotext not found: install poppler-utils (scripts/ensure-pdftotext.sh)")
	}
	in := filepath.Join(t.TempDir(), "r.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", in, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

func TestDirWritesAtomicallyListsAndOpens(t *testing.T) {
	d := report.Dir{Root: t.TempDir()}
	if err := d.Write(books, "2026-03-15", map[string][]byte{report.TrialBalanceCSV: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	// A rerun overwrites.
	if err := d.Write(books, "2026-03-15", map[string][]byte{report.TrialBalanceCSV: []byte("new"), report.AgingCSV: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(books, "2026-03-15", report.TrialBalanceCSV)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "new" {
		t.Fatalf("after the rerun the file holds %q, want new", b)
	}
	l, err := d.List(books)
	if err != nil || len(l) != 2 {
		t.Fatalf("List = %+v, %v; want 2 files", l, err)
	}
	entries, _ := os.ReadDir(filepath.Join(d.Root, "t1", "c1", "2026-03-15"))
	if len(entries) != 2 {
		t.Fatalf("the date's directory holds %d entries, want the 2 files and no temporary one", len(entries))
	}
	// Another tenant's books see none of them.
	other := accounting.Books{Tenant: "t2", Company: "c1"}
	if l, err := d.List(other); err != nil || len(l) != 0 {
		t.Fatalf("List of another tenant = %+v, %v; want none", l, err)
	}
	if _, err := d.Open(other, "2026-03-15", report.TrialBalanceCSV); !errors.Is(err, report.ErrNotFound) {
		t.Fatalf("Open of another tenant's report = %v, want ErrNotFound", err)
	}
	for _, bad := range [][2]string{{"../2026-03-15", report.TrialBalanceCSV}, {"2026-03-15", "../../../etc/passwd"}, {"2026-03-15", "x.csv"}} {
		if _, err := d.Open(books, bad[0], bad[1]); !errors.Is(err, report.ErrNotFound) {
			t.Errorf("Open(%q, %q) = %v, want ErrNotFound", bad[0], bad[1], err)
		}
	}
	if err := d.Write(accounting.Books{Tenant: "..", Company: "c"}, "2026-03-15", nil); err == nil {
		t.Error("Write for tenant .. succeeded")
	}
}
