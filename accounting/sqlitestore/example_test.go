package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/sqlitestore"
)

// Example posts an invoice, posts it again (a retried job), and reads the
// trial balance.
func Example() {
	dir, _ := os.MkdirTemp("", "books")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(dir, "books.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	books := accounting.Books{Tenant: "tenant_123", Company: "company_123"}
	_, _ = s.CompanyCreate(ctx, accounting.Company{Tenant: books.Tenant, ID: books.Company, Name: "Acme", Currency: "EUR"})
	_ = s.PartyCreate(ctx, books, accounting.Party{Kind: accounting.Customer, ID: "cust_1", Name: "Globex"})
	_, err = s.DocumentCreate(ctx, books, accounting.DocumentParams{
		Kind: accounting.Invoice, ID: "inv_001", PartyID: "cust_1", Currency: "EUR",
		IssueDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Lines: []accounting.Line{
			{Description: "Consulting", Quantity: 3, UnitPrice: 12000, Discount: 1000, TaxRate: 2000},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	first, _ := s.DocumentPost(ctx, books, accounting.Invoice, "inv_001", 1)
	again, _ := s.DocumentPost(ctx, books, accounting.Invoice, "inv_001", 1)
	fmt.Println("same entry:", first.Entry.ID == again.Entry.ID)
	tb, _ := s.TrialBalance(ctx, books)
	for _, r := range tb {
		fmt.Printf("%s %-20s %6d\n", r.Code, r.Name, r.Balance())
	}
	// Output:
	// same entry: true
	// 1200 Accounts receivable   42000
	// 2200 Tax payable           -7000
	// 4000 Revenue              -35000
}
