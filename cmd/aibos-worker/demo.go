package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/tenant"
)

// demoInterval is how often serve --demo adds an invoice: slow enough to
// watch, fast enough that work is always flowing.
const demoInterval = 2 * time.Second

// demoTenant is one tenant serve --demo keeps books for: each in its own
// time zone (its documents are dated in it) and currency.
type demoTenant struct {
	tenant, company, name, currency string
	zone                            string
}

var demoTenants = []demoTenant{
	{"demo-eu", "acme-gmbh", "Acme GmbH", "EUR", "Europe/Berlin"},
	{"demo-us", "globex", "Globex Inc.", "USD", "America/New_York"},
}

var demoCustomers = []accounting.Party{
	{Kind: accounting.Customer, ID: "cust-1", Name: "Northwind Traders"},
	{Kind: accounting.Customer, ID: "cust-2", Name: "Contoso Ltd"},
	{Kind: accounting.Customer, ID: "cust-3", Name: "Fabrikam"},
}

// startDemo seeds the demo tenants' companies and customers (keeping what
// an earlier run made) and adds, every interval, an invoice for one of
// them, and every third interval a payment, each with the job that posts
// it. It returns a function that stops it and waits for it.
func startDemo(ctx context.Context, svc *service.Service, ledger accounting.Store, log *slog.Logger, interval time.Duration) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d := &demo{svc: svc, ledger: ledger, log: log, run: time.Now().UTC().Format("20060102T150405")}
		if err := d.seed(ctx); err != nil {
			log.Error("demo: seed the demo books", "err", err)
			return
		}
		log.Info("demo: seeded", "tenants", len(demoTenants))
		// Today's reports at once, rather than at the next 02:00: one job
		// per company, for its tenant's local date. (The fan-out job of
		// all tenants would add none for a tenant whose clock is not yet
		// past 02:00.)
		for _, t := range demoTenants {
			loc, _ := time.LoadLocation(t.zone) // seed checked it
			day := time.Now().In(loc).Format(time.DateOnly)
			_, err := svc.Client().Add(ctx, jobs.QueueReports, jobs.DailyReport(t.tenant, t.company, day))
			if err != nil && !errors.Is(err, worker.ErrDuplicate) {
				log.Warn("demo: enqueue the daily reports", "tenant", t.tenant, "err", err)
			}
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for n := 0; ; n++ {
			if err := d.tick(ctx, n); err != nil && ctx.Err() == nil {
				log.Warn("demo: add work", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

type demo struct {
	svc    *service.Service
	ledger accounting.Store
	log    *slog.Logger
	run    string // makes this run's document ids unique
}

func (d *demo) seed(ctx context.Context) error {
	reg, err := tenant.New(d.svc.Broker())
	if err != nil {
		return err
	}
	for _, t := range demoTenants {
		if _, err := time.LoadLocation(t.zone); err != nil {
			return fmt.Errorf("time zone of %s: %w", t.tenant, err)
		}
		// Registered with their zones, so their daily reports run at 02:00
		// their time.
		_, err := reg.Create(ctx, &tenant.Tenant{ID: t.tenant, Name: t.name, TimeZone: t.zone, Currency: t.currency})
		if err != nil && !errors.Is(err, tenant.ErrExists) {
			return err
		}
		_, err = d.ledger.CompanyCreate(ctx, accounting.Company{Tenant: t.tenant, ID: t.company, Name: t.name, Currency: t.currency})
		if err != nil && !errors.Is(err, accounting.ErrDuplicate) {
			return err
		}
		for _, c := range demoCustomers {
			err := d.ledger.PartyCreate(ctx, accounting.Books{Tenant: t.tenant, Company: t.company}, c)
			if err != nil && !errors.Is(err, accounting.ErrDuplicate) {
				return err
			}
		}
	}
	return nil
}

// tick adds invoice n (and, every third tick, a payment) for tenant n mod
// the number of tenants.
func (d *demo) tick(ctx context.Context, n int) error {
	t := demoTenants[n%len(demoTenants)]
	books := accounting.Books{Tenant: t.tenant, Company: t.company}
	loc, _ := time.LoadLocation(t.zone) // checked by seed
	now := time.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	cust := demoCustomers[n%len(demoCustomers)].ID
	id := fmt.Sprintf("INV-%s-%d", d.run, n)
	p := accounting.DocumentParams{Kind: accounting.Invoice, ID: id, PartyID: cust, Currency: t.currency,
		IssueDate: today, DueDate: today.AddDate(0, 0, 30)}
	for i := range 1 + n%3 {
		p.Lines = append(p.Lines, accounting.Line{Description: fmt.Sprintf("Consulting, item %d", i+1),
			Quantity: int64(1 + (n+i)%4), UnitPrice: int64(1999 + 1250*i), TaxRate: 1900})
	}
	if _, err := d.ledger.DocumentCreate(ctx, books, p); err != nil {
		return fmt.Errorf("create invoice %s: %w", id, err)
	}
	if err := d.enqueue(ctx, t, jobs.QueueInvoices, jobs.TypeInvoice, map[string]any{"invoiceId": id}); err != nil {
		return err
	}
	if n%3 != 2 {
		return nil
	}
	pid := fmt.Sprintf("PAY-%s-%d", d.run, n)
	pay := accounting.Payment{ID: pid, CustomerID: cust, Currency: t.currency, Amount: int64(2500 + 500*(n%5)), Received: today}
	if _, err := d.ledger.PaymentCreate(ctx, books, pay); err != nil {
		return fmt.Errorf("create payment %s: %w", pid, err)
	}
	return d.enqueue(ctx, t, jobs.QueuePayments, jobs.TypePayment, map[string]any{"paymentId": pid})
}

func (d *demo) enqueue(ctx context.Context, t demoTenant, queue, typ string, data map[string]any) error {
	data["tenantId"], data["companyId"] = t.tenant, t.company
	_, err := d.svc.Client().Add(ctx, queue, worker.JobSpec{Type: typ, Data: data, TenantID: t.tenant, CompanyID: t.company})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}
