package accountingtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/internal/fault"
)

func testCompany(t *testing.T, open Opener) {
	b := setup(t, open)
	chart, err := b.s.AccountList(b.ctx, b.books)
	if err != nil || len(chart) != len(accounting.DefaultChart()) {
		t.Fatalf("a new company's chart: %d accounts, %v; want the %d default ones", len(chart), err, len(accounting.DefaultChart()))
	}
	_, err = b.s.CompanyCreate(b.ctx, accounting.Company{Tenant: tenant, ID: company, Currency: "EUR"})
	if !errors.Is(err, accounting.ErrDuplicate) {
		t.Errorf("create the same company twice: %v, want ErrDuplicate", err)
	}
	if err := b.s.AccountCreate(b.ctx, b.books, accounting.Account{Code: "4100", Name: "Services", Type: accounting.Revenue}); err != nil {
		t.Fatalf("add an account: %v", err)
	}
	err = b.s.AccountCreate(b.ctx, b.books, accounting.Account{Code: "4100", Name: "Again", Type: accounting.Revenue})
	if !errors.Is(err, accounting.ErrDuplicate) {
		t.Errorf("add account 4100 twice: %v, want ErrDuplicate", err)
	}
	c, err := b.s.CompanyGet(b.ctx, b.books)
	if err != nil || c.Currency != "EUR" {
		t.Errorf("get company: %+v, %v", c, err)
	}
}

func testValidation(t *testing.T, open Opener) {
	b := setup(t, open)
	bad := func(what string, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	_, err := b.s.CompanyCreate(b.ctx, accounting.Company{Tenant: tenant, ID: "x", Currency: "EURO"})
	bad("company with currency EURO", err, accounting.ErrInvalid)
	_, err = b.s.CompanyCreate(b.ctx, accounting.Company{Tenant: "", ID: "x", Currency: "EUR"})
	bad("company without tenant", err, accounting.ErrInvalid)
	err = b.s.AccountCreate(b.ctx, b.books, accounting.Account{Code: "9", Type: "cash"})
	bad("account of type cash", err, accounting.ErrInvalid)

	zeroQty := doc(accounting.Invoice, "i1", 0, 100)
	zeroQty.Lines[0].Quantity = 0
	_, err = b.s.DocumentCreate(b.ctx, b.books, zeroQty)
	bad("invoice line with quantity 0", err, accounting.ErrInvalid)
	var ie *accounting.InvalidError
	if !errors.As(err, &ie) || ie.Field != "lines[0].quantity" {
		t.Errorf("invoice line with quantity 0: %v, want an InvalidError naming lines[0].quantity", err)
	}
	usd := doc(accounting.Invoice, "i1", 0, 100)
	usd.Currency = "USD"
	_, err = b.s.DocumentCreate(b.ctx, b.books, usd)
	bad("USD invoice in EUR books", err, accounting.ErrInvalid)
	bigDiscount := doc(accounting.Invoice, "i1", 0, 100)
	bigDiscount.Lines[0].Discount = 101
	_, err = b.s.DocumentCreate(b.ctx, b.books, bigDiscount)
	bad("discount above the line amount", err, accounting.ErrInvalid)
	overflow := doc(accounting.Invoice, "i1", 0, 1<<62)
	overflow.Lines[0].Quantity = 4
	_, err = b.s.DocumentCreate(b.ctx, b.books, overflow)
	bad("line amount overflowing int64", err, accounting.ErrInvalid)
	stranger := doc(accounting.Invoice, "i1", 0, 100)
	stranger.PartyID = "nobody"
	_, err = b.s.DocumentCreate(b.ctx, b.books, stranger)
	bad("invoice to an unknown customer", err, accounting.ErrNotFound)
	_, err = b.s.DocumentPost(b.ctx, b.books, accounting.Invoice, "missing", 1)
	bad("post a missing invoice", err, accounting.ErrNotFound)
	_, err = b.s.PaymentCreate(b.ctx, b.books, accounting.Payment{ID: "p", CustomerID: customer, Currency: "EUR", Amount: -5, Received: epoch})
	bad("payment of -5", err, accounting.ErrInvalid)
	if n := b.count(t); n != 0 {
		t.Errorf("refused input left %d journal entries", n)
	}
}

func testInvoiceTotals(t *testing.T, open Opener) {
	b := setup(t, open)
	// Two lines of 0.05 at 10 %: each line's tax, 0.005, rounds half up
	// to 0.01; rounding the invoice's tax once would give 0.01 in all.
	d := doc(accounting.Invoice, "inv-1", 0)
	d.Lines = []accounting.Line{
		{Quantity: 1, UnitPrice: 5, TaxRate: 1000},
		{Quantity: 1, UnitPrice: 5, TaxRate: 1000},
		{Quantity: 3, UnitPrice: 1999, Discount: 97, TaxRate: 825}, // net 5900, tax 486.75 → 487
	}
	got := b.create(t, d)
	want := accounting.Totals{Subtotal: 5910, Tax: 489, Total: 6399}
	if got.Totals != want {
		t.Fatalf("totals %+v, want %+v (tax rounded half up per line)", got.Totals, want)
	}
	p := b.post(t, accounting.Invoice, "inv-1", 1)
	if p.Entry == nil || p.Reversal != nil {
		t.Fatalf("first posting: entry %v, reversal %v; want an entry and no reversal", p.Entry, p.Reversal)
	}
	for account, want := range map[string]int64{
		accounting.AccountReceivable: 6399,
		accounting.AccountRevenue:    -5910,
		accounting.AccountTaxPayable: -489,
	} {
		if got := b.balance(t, account); got != want {
			t.Errorf("account %s: balance %d, want %d", account, got, want)
		}
	}
}

func testPostTwice(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	first := b.post(t, accounting.Invoice, "inv-1", 1)
	again := b.post(t, accounting.Invoice, "inv-1", 1)
	if again.Entry == nil || again.Entry.ID != first.Entry.ID {
		t.Fatalf("second posting returned entry %v, want the first one, %d", again.Entry, first.Entry.ID)
	}
	if n := b.count(t); n != 1 {
		t.Fatalf("posting one version twice made %d entries, want 1", n)
	}
}

func testNewVersion(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	v1 := b.post(t, accounting.Invoice, "inv-1", 1)
	upd := doc(accounting.Invoice, "inv-1", 0, 1500)
	upd.Version = 1
	if _, err := b.s.DocumentUpdate(b.ctx, b.books, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := b.s.DocumentUpdate(b.ctx, b.books, upd); !errors.Is(err, accounting.ErrConflict) {
		t.Errorf("update of version 1 when 2 is the latest: %v, want ErrConflict", err)
	}
	v2 := b.post(t, accounting.Invoice, "inv-1", 2)
	if v2.Reversal == nil || v2.Reversal.Reverses != v1.Entry.ID || v2.Entry == nil {
		t.Fatalf("posting version 2: reversal %+v, entry %+v; want a reversal of entry %d and a new entry", v2.Reversal, v2.Entry, v1.Entry.ID)
	}
	if got := b.balance(t, accounting.AccountReceivable); got != 1800 {
		t.Errorf("receivables after version 2: %d, want 1800 (version 1 reversed)", got)
	}
	if n := b.count(t); n != 3 {
		t.Errorf("%d entries, want 3 (v1, its reversal, v2)", n)
	}
	if again := b.post(t, accounting.Invoice, "inv-1", 1); again.Entry.ID != v1.Entry.ID || b.count(t) != 3 {
		t.Errorf("re-posting version 1 after version 2: entry %d, %d entries; want the first entry and no change", again.Entry.ID, b.count(t))
	}
}

func testVoid(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	b.post(t, accounting.Invoice, "inv-1", 1)
	v, err := b.s.DocumentVoid(b.ctx, b.books, accounting.Invoice, "inv-1", 1)
	if err != nil || v.Version != 2 || v.Status != accounting.Void {
		t.Fatalf("void: %+v, %v", v, err)
	}
	p := b.post(t, accounting.Invoice, "inv-1", 2)
	if p.Entry != nil || p.Reversal == nil {
		t.Fatalf("posting a void: entry %v, reversal %v; want only a reversal", p.Entry, p.Reversal)
	}
	if got := b.balance(t, accounting.AccountReceivable); got != 0 {
		t.Errorf("receivables after the void: %d, want 0", got)
	}
	if _, err := b.s.DocumentPost(b.ctx, b.books, accounting.Invoice, "inv-1", 1); err != nil {
		t.Errorf("re-post version 1 after the void: %v, want the first posting", err)
	}
	if _, err := b.s.DocumentVoid(b.ctx, b.books, accounting.Invoice, "inv-1", 2); !errors.Is(err, accounting.ErrConflict) {
		t.Errorf("void a void invoice: %v, want ErrConflict", err)
	}
}

func testBill(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Bill, "bill-1", 0, 1000, 501)) // tax 200 + 100.2 → 100
	b.post(t, accounting.Bill, "bill-1", 1)
	for account, want := range map[string]int64{
		accounting.AccountPayable:       -1801,
		accounting.AccountExpense:       1501,
		accounting.AccountTaxReceivable: 300,
	} {
		if got := b.balance(t, account); got != want {
			t.Errorf("account %s: balance %d, want %d", account, got, want)
		}
	}
	upd := doc(accounting.Bill, "bill-1", 0, 2000)
	upd.Version = 1
	if _, err := b.s.DocumentUpdate(b.ctx, b.books, upd); err != nil {
		t.Fatalf("update bill: %v", err)
	}
	b.post(t, accounting.Bill, "bill-1", 2)
	if got := b.balance(t, accounting.AccountPayable); got != -2400 {
		t.Errorf("payables after version 2: %d, want -2400", got)
	}
}

func (b *bundle) pay(t *testing.T, id string, amount int64) *accounting.Posting {
	t.Helper()
	if _, err := b.s.PaymentCreate(b.ctx, b.books, accounting.Payment{ID: id, CustomerID: customer, Currency: "EUR", Amount: amount, Received: epoch}); err != nil {
		t.Fatalf("create payment %s: %v", id, err)
	}
	p, err := b.s.PaymentPost(b.ctx, b.books, id)
	if err != nil {
		t.Fatalf("post payment %s: %v", id, err)
	}
	return p
}

func testPayment(t *testing.T, open Opener) {
	b := setup(t, open)
	// Created newest first: application order follows the issue date.
	b.create(t, doc(accounting.Invoice, "inv-c", 20, 1000)) // 1200
	b.create(t, doc(accounting.Invoice, "inv-b", 10, 1000)) // 1200
	b.create(t, doc(accounting.Invoice, "inv-a", 0, 500))   // 600
	for _, id := range []string{"inv-a", "inv-b", "inv-c"} {
		b.post(t, accounting.Invoice, id, 1)
	}
	p := b.pay(t, "pay-1", 1000)
	want := []accounting.Application{{InvoiceID: "inv-a", Amount: 600}, {InvoiceID: "inv-b", Amount: 400}}
	if fmt.Sprint(p.Applications) != fmt.Sprint(want) {
		t.Fatalf("applications %v, want %v (oldest first, partial last)", p.Applications, want)
	}
	again, err := b.s.PaymentPost(b.ctx, b.books, "pay-1")
	if err != nil || again.Entry.ID != p.Entry.ID || fmt.Sprint(again.Applications) != fmt.Sprint(want) {
		t.Fatalf("posting the payment again: %+v, %v; want the first posting", again, err)
	}
	p2 := b.pay(t, "pay-2", 2500) // settles 800 + 1200, 500 left as credit
	want2 := []accounting.Application{{InvoiceID: "inv-b", Amount: 800}, {InvoiceID: "inv-c", Amount: 1200}}
	if fmt.Sprint(p2.Applications) != fmt.Sprint(want2) {
		t.Fatalf("second payment's applications %v, want %v", p2.Applications, want2)
	}
	if got := b.balance(t, accounting.AccountCustomerCredit); got != -500 {
		t.Errorf("customer credit %d, want -500 (the overpayment)", got)
	}
	if got := b.balance(t, accounting.AccountCash); got != 3500 {
		t.Errorf("cash %d, want 3500", got)
	}
	open2, err := b.s.OpenReceivables(b.ctx, b.books, epoch)
	if err != nil || len(open2) != 0 {
		t.Errorf("open receivables after full payment: %v, %v; want none", open2, err)
	}
}

// testCustomerCredit: an overpayment is kept as the customer's credit and
// settles the customer's later invoices when they are posted, oldest
// payment first, exactly once; a payment not yet posted is no credit.
func testCustomerCredit(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-a", 0, 1000)) // 1200
	b.post(t, accounting.Invoice, "inv-a", 1)
	b.pay(t, "pay-1", 2000) // 1200 to inv-a, 800 credit
	if p := b.pay(t, "pay-2", 100); len(p.Applications) != 0 {
		t.Fatalf("pay-2 applied %v with nothing open, want all of it kept as credit", p.Applications)
	}
	b.create(t, doc(accounting.Invoice, "inv-b", 10, 500)) // 600, from pay-1's credit
	pb := b.post(t, accounting.Invoice, "inv-b", 1)
	if pb.Credit == nil || fmt.Sprint(pb.Credit.Lines) != fmt.Sprint([]accounting.EntryLine{
		{Account: accounting.AccountCustomerCredit, Currency: "EUR", Debit: 600},
		{Account: accounting.AccountReceivable, Currency: "EUR", Credit: 600},
	}) {
		t.Fatalf("posting inv-b used credit %+v, want 600 moved from customer credit to receivables", pb.Credit)
	}
	if _, err := b.s.PaymentCreate(b.ctx, b.books, accounting.Payment{ID: "pay-3", CustomerID: customer, Currency: "EUR", Amount: 5000, Received: epoch}); err != nil {
		t.Fatalf("create payment: %v", err)
	}
	b.create(t, doc(accounting.Invoice, "inv-c", 20, 1000)) // 1200: 200 of pay-1, 100 of pay-2; pay-3 is not posted
	pc := b.post(t, accounting.Invoice, "inv-c", 1)
	if pc.Credit == nil || pc.Credit.Lines[0].Debit != 300 {
		t.Fatalf("posting inv-c used credit %+v, want 300 (pay-1's 200 and pay-2's 100)", pc.Credit)
	}
	again := b.post(t, accounting.Invoice, "inv-c", 1)
	if again.Credit == nil || again.Credit.ID != pc.Credit.ID || b.balance(t, accounting.AccountCustomerCredit) != 0 {
		t.Fatalf("posting inv-c again: credit entry %+v, want the first one (%d) and no more credit used", again.Credit, pc.Credit.ID)
	}
	items, err := b.s.OpenReceivables(b.ctx, b.books, epoch)
	if err != nil || len(items) != 1 || items[0].ID != "inv-c" || items[0].Applied != 300 || items[0].Open != 900 {
		t.Fatalf("open receivables %+v, %v; want inv-c with 300 applied and 900 open", items, err)
	}
}

// testCreditNewVersion: a new version of an invoice that a payment was
// applied to takes more from that payment's credit; the application grows.
func testCreditNewVersion(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000)) // 1200
	b.post(t, accounting.Invoice, "inv-1", 1)
	b.pay(t, "pay-1", 1300)                          // 1200 to inv-1, 100 credit
	upd := doc(accounting.Invoice, "inv-1", 0, 1050) // 1260
	upd.Version = 1
	if _, err := b.s.DocumentUpdate(b.ctx, b.books, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	if p := b.post(t, accounting.Invoice, "inv-1", 2); p.Credit == nil || p.Credit.Lines[0].Debit != 60 {
		t.Fatalf("posting version 2 used credit %+v, want 60 of pay-1's 100", p.Credit)
	}
	if items, err := b.s.OpenReceivables(b.ctx, b.books, epoch); err != nil || len(items) != 0 {
		t.Fatalf("open receivables %+v, %v; want none (1260 applied from pay-1)", items, err)
	}
	if got := b.balance(t, accounting.AccountCustomerCredit); got != -40 {
		t.Errorf("customer credit %d, want -40", got)
	}
}

func testPaymentBlocksShrink(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	b.post(t, accounting.Invoice, "inv-1", 1)
	b.pay(t, "pay-1", 1000)
	if _, err := b.s.DocumentVoid(b.ctx, b.books, accounting.Invoice, "inv-1", 1); err != nil {
		t.Fatalf("void: %v", err)
	}
	if _, err := b.s.DocumentPost(b.ctx, b.books, accounting.Invoice, "inv-1", 2); !errors.Is(err, accounting.ErrConflict) {
		t.Errorf("posting the void of an invoice with 1000 applied: %v, want ErrConflict", err)
	}
}

func testJournal(t *testing.T, open Opener) {
	b := setup(t, open)
	e := accounting.JournalEntry{Date: epoch, Memo: "capital", Lines: []accounting.EntryLine{
		{Account: accounting.AccountCash, Debit: 100, Currency: "EUR"},
		{Account: accounting.AccountEquity, Credit: 99, Currency: "EUR"},
	}}
	if _, err := b.s.JournalPost(b.ctx, b.books, e); !errors.Is(err, accounting.ErrUnbalanced) {
		t.Fatalf("unbalanced entry: %v, want ErrUnbalanced", err)
	}
	e.Lines[1].Credit = 100
	got, err := b.s.JournalPost(b.ctx, b.books, e)
	if err != nil {
		t.Fatalf("balanced entry: %v", err)
	}
	read, err := b.s.JournalGet(b.ctx, b.books, got.ID)
	if err != nil || len(read.Lines) != 2 || read.Lines[0].Debit != 100 {
		t.Errorf("read the entry back: %+v, %v", read, err)
	}
	e.Lines[0].Account = accounting.AccountReceivable
	if _, err := b.s.JournalPost(b.ctx, b.books, e); !errors.Is(err, accounting.ErrInvalid) {
		t.Errorf("manual entry on the receivables control account: %v, want ErrInvalid", err)
	}
	e.Lines[0].Account = "9999"
	if _, err := b.s.JournalPost(b.ctx, b.books, e); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("entry on an unknown account: %v, want ErrNotFound", err)
	}
}

func testTenantIsolation(t *testing.T, open Opener) {
	b := setup(t, open)
	other := accounting.Books{Tenant: "tenant-b", Company: company} // same company id
	b.company(t, other, "USD")
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	b.post(t, accounting.Invoice, "inv-1", 1)
	if _, err := b.s.DocumentGet(b.ctx, other, accounting.Invoice, "inv-1", 1); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("tenant B reads tenant A's invoice: %v, want ErrNotFound", err)
	}
	if _, err := b.s.DocumentPost(b.ctx, other, accounting.Invoice, "inv-1", 1); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("tenant B posts tenant A's invoice: %v, want ErrNotFound", err)
	}
	if tb, err := b.s.TrialBalance(b.ctx, other); err != nil || len(tb) != 0 {
		t.Errorf("tenant B's trial balance: %v, %v; want empty", tb, err)
	}
	if items, err := b.s.OpenReceivables(b.ctx, other, epoch); err != nil || len(items) != 0 {
		t.Errorf("tenant B's receivables: %v, %v; want none", items, err)
	}
	entry, _ := b.s.JournalCount(b.ctx, b.books)
	if _, err := b.s.JournalGet(b.ctx, other, int64(entry)); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("tenant B reads tenant A's journal entry: %v, want ErrNotFound", err)
	}
	if cs, err := b.s.CompanyList(b.ctx, "tenant-b"); err != nil || len(cs) != 1 || cs[0].Currency != "USD" {
		t.Errorf("tenant B's companies: %v, %v", cs, err)
	}
}

// testAllOrNothing fails the posting transaction at each of its statements
// in turn, as a crash there would, then lets it through: the books must
// never hold part of a posting, and the final posting must be the only
// one.
func testAllOrNothing(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "inv-1", 0, 1000))
	b.post(t, accounting.Invoice, "inv-1", 1)
	upd := doc(accounting.Invoice, "inv-1", 0, 700)
	upd.Version = 1
	if _, err := b.s.DocumentUpdate(b.ctx, b.books, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, err := b.s.PaymentCreate(b.ctx, b.books, accounting.Payment{ID: "pay-1", CustomerID: customer, Currency: "EUR", Amount: 2000, Received: epoch}); err != nil {
		t.Fatalf("create payment: %v", err)
	}
	crash := errors.New("injected crash")
	steps := []struct {
		name    string
		post    func(ctx context.Context) error
		entries int // entries the posting adds
	}{
		{"invoice version 2", func(ctx context.Context) error {
			_, err := b.s.DocumentPost(ctx, b.books, accounting.Invoice, "inv-1", 2)
			return err
		}, 2},
		{"payment", func(ctx context.Context) error {
			_, err := b.s.PaymentPost(ctx, b.books, "pay-1")
			return err
		}, 1},
		// 1160 of pay-1 is left as credit: it settles inv-2.
		{"invoice settled from credit", func(ctx context.Context) error {
			_, err := b.s.DocumentPost(ctx, b.books, accounting.Invoice, "inv-2", 1)
			return err
		}, 2},
	}
	b.create(t, doc(accounting.Invoice, "inv-2", 1, 500))
	for _, st := range steps {
		before := b.count(t)
		for k := 1; ; k++ {
			if k > 200 {
				t.Fatalf("%s: still failing after 200 injected crashes", st.name)
			}
			// Statements are counted across every transaction of the
			// call, so that a posting split over two would be caught
			// between them.
			calls := 0
			ctx := fault.With(b.ctx, func(int) error {
				if calls++; calls == k {
					return crash
				}
				return nil
			})
			err := st.post(ctx)
			if err == nil {
				break
			}
			if !errors.Is(err, crash) {
				t.Fatalf("%s with a crash at statement %d: %v", st.name, k, err)
			}
			if n := b.count(t); n != before {
				t.Fatalf("%s: a crash at statement %d left %d entries, want %d (nothing)", st.name, k, n, before)
			}
			CheckBooks(t, b.s)
		}
		if err := st.post(b.ctx); err != nil {
			t.Fatalf("%s again: %v", st.name, err)
		}
		if n := b.count(t); n != before+st.entries {
			t.Fatalf("%s: %d entries after the crashes and a retry, want %d", st.name, n, before+st.entries)
		}
	}
	if got := b.balance(t, accounting.AccountReceivable); got != 0 {
		t.Errorf("receivables %d, want 0 (version 2, 840, paid; inv-2, 600, from credit)", got)
	}
	if got := b.balance(t, accounting.AccountCustomerCredit); got != -560 {
		t.Errorf("customer credit %d, want -560 (2000 - 840 - 600)", got)
	}
}

// testConcurrent posts the same versions from two handles on one database
// (as two processes would) and two goroutines each.
func testConcurrent(t *testing.T, open Opener) {
	b := setup(t, open)
	handles := []accounting.Store{b.s, open(t, "main")}
	const invoices = 4
	for i := range invoices {
		b.create(t, doc(accounting.Invoice, fmt.Sprintf("inv-%d", i), i, 1000))
	}
	var wg sync.WaitGroup
	ids := make([][]int64, invoices)
	var mu sync.Mutex
	errs := make(chan error, 4*invoices)
	for i := range invoices {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := handles[g%2].DocumentPost(context.Background(), b.books, accounting.Invoice, fmt.Sprintf("inv-%d", i), 1)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids[i] = append(ids[i], p.Entry.ID)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent post: %v", err)
	}
	for i, got := range ids {
		for _, id := range got {
			if id != got[0] {
				t.Errorf("invoice %d: concurrent posts returned entries %v, want one entry", i, got)
				break
			}
		}
	}
	if n := b.count(t); n != invoices {
		t.Fatalf("%d entries for %d invoices posted 4 times each at once, want %d", n, invoices, invoices)
	}
}

func testReports(t *testing.T, open Opener) {
	b := setup(t, open)
	b.create(t, doc(accounting.Invoice, "old", 0, 1000)) // due epoch+30
	b.create(t, doc(accounting.Invoice, "new", 50, 500)) // due epoch+80
	b.post(t, accounting.Invoice, "old", 1)
	b.post(t, accounting.Invoice, "new", 1)
	b.pay(t, "pay-1", 200)
	items, err := b.s.OpenReceivables(b.ctx, b.books, epoch.Add(75*day))
	if err != nil {
		t.Fatalf("open receivables: %v", err)
	}
	var got string
	for _, it := range items {
		got += fmt.Sprintf("%s %d %s; ", it.ID, it.Open, it.Bucket)
	}
	if got != "old 1000 31-60; new 600 current; " {
		t.Errorf("open receivables at day 75: %v; want old 1000 31-60, new 600 current", got)
	}
	act, err := b.s.AccountActivity(b.ctx, b.books, accounting.AccountReceivable)
	if err != nil || len(act) != 3 || act[0].Debit != 1200 || act[2].Credit != 200 {
		t.Errorf("receivables activity: %+v, %v; want 1200, 600 debits then a 200 credit", act, err)
	}
	if _, err := b.s.AccountActivity(b.ctx, b.books, "0000"); !errors.Is(err, accounting.ErrNotFound) {
		t.Errorf("activity of an unknown account: %v, want ErrNotFound", err)
	}
	b.create(t, doc(accounting.Bill, "b1", 0, 100))
	b.post(t, accounting.Bill, "b1", 1)
	pay, err := b.s.OpenPayables(b.ctx, b.books, epoch.Add(200*day))
	if err != nil || len(pay) != 1 || pay[0].Open != 120 || pay[0].Bucket != "90+" {
		t.Errorf("open payables: %+v, %v; want b1 open 120, 90+", pay, err)
	}
}
