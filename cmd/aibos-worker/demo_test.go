package main

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/internal/testwait"
)

// TestServeDemo runs serve --demo briefly: both demo tenants' invoices get
// posted by the accounting processors, a payment too, and the books
// balance.
func TestServeDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, []string{"WORKER_DATA_DIR=" + dir, "WORKER_HTTP_ADDR=127.0.0.1:0"}, "serve", "--demo")
	p.waitLog("demo: seeded", 30*time.Second)
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The third tick adds the first payment: wait for it to be posted
	// (cash debited) and for each tenant's first invoice.
	testwait.For(t, 60*time.Second, "demo invoices and a payment posted", func() bool {
		posted := 0
		for _, d := range demoTenants {
			tb, err := st.TrialBalance(ctx, accounting.Books{Tenant: d.tenant, Company: d.company})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tb {
				if r.Code == accounting.AccountReceivable && r.Debit > 0 {
					posted++
				}
				if r.Code == accounting.AccountCash && r.Debit > 0 {
					posted++
				}
			}
		}
		return posted >= 3
	})
	// Notifications go to the in-process outbox; the daily reports of
	// both tenants are on disk.
	p.waitLog("demo: notification kept in the in-process outbox", 60*time.Second)
	for _, d := range demoTenants {
		testwait.For(t, 60*time.Second, "the daily reports of "+d.tenant, func() bool {
			l, err := (report.Dir{Root: filepath.Join(dir, "reports")}).List(accounting.Books{Tenant: d.tenant, Company: d.company})
			return err == nil && len(l) == 4
		})
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("serve --demo exited %d after SIGTERM, want 0:\n%s", code, p.output())
	}
	accountingtest.CheckBooks(t, st)
	tenants, err := st.Tenants(ctx)
	if err != nil || len(tenants) != 2 {
		t.Fatalf("tenants %v (%v), want the two demo tenants", tenants, err)
	}
}
