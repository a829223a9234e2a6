// Package accountingtest is the conformance suite of accounting.Store: Run
// checks every rule the stores share, and CheckBooks, run after each test,
// checks the books' invariants.
package accountingtest

import (
	"context"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
)

// Opener opens a store on the database name of test t, creating the
// database on first use. Opening the same name again in the same test gives
// another handle on the same data, as another process would have; every
// handle is closed when t ends.
type Opener func(t *testing.T, name string) accounting.Store

// Run runs the suite against the stores open makes, each test on its own
// database.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Company", testCompany},
		{"Validation", testValidation},
		{"InvoiceTotalsPerLineRounding", testInvoiceTotals},
		{"PostTwiceIsNoOp", testPostTwice},
		{"NewVersionReversesPrevious", testNewVersion},
		{"VoidReverses", testVoid},
		{"Bill", testBill},
		{"PaymentOldestFirst", testPayment},
		{"PaymentTooLargeForNewVersion", testPaymentBlocksShrink},
		{"CustomerCredit", testCustomerCredit},
		{"CustomerCreditNewVersion", testCreditNewVersion},
		{"JournalBalances", testJournal},
		{"TenantIsolation", testTenantIsolation},
		{"PostingAllOrNothing", testAllOrNothing},
		{"ConcurrentPostOnce", testConcurrent},
		{"Reports", testReports},
		{"EntrySequence", testEntrySequence},
		{"SyncCursor", testSyncCursor},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, open)
		})
	}
}

// bundle is what most tests start from: a store checked by CheckBooks when
// the test ends, one company with a customer and a vendor.
type bundle struct {
	s     accounting.Store
	ctx   context.Context
	books accounting.Books
}

const (
	tenant   = "tenant-a"
	company  = "acme"
	customer = "cust-1"
	vendor   = "vend-1"
	day      = 24 * time.Hour
)

var epoch = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func setup(t *testing.T, open Opener) *bundle {
	t.Helper()
	s := open(t, "main")
	t.Cleanup(func() { CheckBooks(t, s) })
	b := &bundle{s: s, ctx: context.Background(), books: accounting.Books{Tenant: tenant, Company: company}}
	b.company(t, b.books, "EUR")
	return b
}

// company creates a company with a customer and a vendor.
func (b *bundle) company(t *testing.T, books accounting.Books, currency string) {
	t.Helper()
	if _, err := b.s.CompanyCreate(b.ctx, accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Acme", Currency: currency}); err != nil {
		t.Fatalf("create company: %v", err)
	}
	for _, p := range []accounting.Party{{Kind: accounting.Customer, ID: customer, Name: "C"}, {Kind: accounting.Vendor, ID: vendor, Name: "V"}} {
		if err := b.s.PartyCreate(b.ctx, books, p); err != nil {
			t.Fatalf("create %s: %v", p.Kind, err)
		}
	}
}

// doc returns the parameters of a document of b's company with one line
// per price (quantity 1, 20 % tax), issued days after epoch.
func doc(kind accounting.DocumentKind, id string, days int, prices ...int64) accounting.DocumentParams {
	party := customer
	if kind == accounting.Bill {
		party = vendor
	}
	d := accounting.DocumentParams{Kind: kind, ID: id, PartyID: party, Currency: "EUR",
		IssueDate: epoch.Add(time.Duration(days) * day), DueDate: epoch.Add(time.Duration(days+30) * day)}
	for _, p := range prices {
		d.Lines = append(d.Lines, accounting.Line{Description: "item", Quantity: 1, UnitPrice: p, TaxRate: 2000})
	}
	return d
}

func (b *bundle) create(t *testing.T, d accounting.DocumentParams) *accounting.Document {
	t.Helper()
	out, err := b.s.DocumentCreate(b.ctx, b.books, d)
	if err != nil {
		t.Fatalf("create %s %s: %v", d.Kind, d.ID, err)
	}
	return out
}

func (b *bundle) post(t *testing.T, kind accounting.DocumentKind, id string, version int) *accounting.Posting {
	t.Helper()
	p, err := b.s.DocumentPost(b.ctx, b.books, kind, id, version)
	if err != nil {
		t.Fatalf("post %s %s version %d: %v", kind, id, version, err)
	}
	return p
}

func (b *bundle) count(t *testing.T) int {
	t.Helper()
	n, err := b.s.JournalCount(b.ctx, b.books)
	if err != nil {
		t.Fatalf("count entries: %v", err)
	}
	return n
}

// balance returns an account's debit-minus-credit balance in the books.
func (b *bundle) balance(t *testing.T, account string) int64 {
	t.Helper()
	return balanceOf(t, b.s, b.books, account)
}

func balanceOf(t testing.TB, s accounting.Store, books accounting.Books, account string) int64 {
	t.Helper()
	tb, err := s.TrialBalance(context.Background(), books)
	if err != nil {
		t.Fatalf("trial balance: %v", err)
	}
	var sum int64
	for _, r := range tb {
		if r.Code == account {
			sum += r.Balance()
		}
	}
	return sum
}

// CheckBooks checks, for every company of every tenant in s, that the
// trial balance sums to zero in every currency, that receivables equal the
// open invoices (posted totals minus applied payments) and that payables
// equal the open bills. Run calls it when each test ends.
func CheckBooks(t testing.TB, s accounting.Store) {
	t.Helper()
	ctx := context.Background()
	tenants, err := s.Tenants(ctx)
	if err != nil {
		t.Errorf("check books: list tenants: %v", err)
		return
	}
	for _, tn := range tenants {
		companies, err := s.CompanyList(ctx, tn)
		if err != nil {
			t.Errorf("check books: list companies of %s: %v", tn, err)
			continue
		}
		for _, c := range companies {
			checkCompany(t, s, accounting.Books{Tenant: tn, Company: c.ID})
		}
	}
}

func checkCompany(t testing.TB, s accounting.Store, books accounting.Books) {
	t.Helper()
	ctx := context.Background()
	tb, err := s.TrialBalance(ctx, books)
	if err != nil {
		t.Errorf("check books of %v: %v", books, err)
		return
	}
	sums := map[string]int64{}
	for _, r := range tb {
		sums[r.Currency] += r.Balance()
	}
	for cur, sum := range sums {
		if sum != 0 {
			t.Errorf("books of %v: trial balance in %s sums to %d, want 0", books, cur, sum)
		}
	}
	for _, c := range []struct {
		account string
		sign    int64 // receivables are a debit balance, payables a credit one
		open    func(context.Context, accounting.Books, time.Time) ([]accounting.OpenItem, error)
	}{
		{accounting.AccountReceivable, 1, s.OpenReceivables},
		{accounting.AccountPayable, -1, s.OpenPayables},
	} {
		items, err := c.open(ctx, books, epoch)
		if err != nil {
			t.Errorf("check books of %v: open items: %v", books, err)
			return
		}
		var open int64
		for _, it := range items {
			open += it.Open
		}
		if got := c.sign * balanceOf(t, s, books, c.account); got != open {
			t.Errorf("books of %v: account %s holds %d, but open documents (posted totals minus applied payments) sum to %d",
				books, c.account, got, open)
		}
	}
}
