package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/accountingtest"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/jobschema"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/workflow"
)

func TestMain(m *testing.M) {
	if os.Getenv(mailChildEnv) != "" {
		mailChild()
		return
	}
	os.Exit(redistest.Main(m))
}

const (
	tenant  = "t1"
	company = "c1"
)

var books = accounting.Books{Tenant: tenant, Company: company}

// bundle is a running service with the accounting job types on an SQLite
// ledger.
type bundle struct {
	svc   *service.Service
	store accounting.Store
	ctx   context.Context
}

func setup(t *testing.T) *bundle { return setupWith(t, nil, nil) }

// setupWith is setup with the configuration changed by conf and more job
// types registered by register, before the service starts.
func setupWith(t *testing.T, conf func(*service.Config), register func(*service.Service, accounting.Store), opts ...jobs.Option) *bundle {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := service.Load(service.LoadInput{LookupEnv: func(k string) (string, bool) {
		v, ok := map[string]string{"WORKER_DATA_DIR": dir, "WORKER_HTTP_ADDR": "127.0.0.1:0", "WORKER_RETRY_DELAY": "10"}[k]
		return v, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	if conf != nil {
		conf(cfg)
	}
	svc, err := service.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "accounting.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Register(svc, st, opts...); err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(svc, st)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		accountingtest.CheckBooks(t, st)
		_ = st.Close()
	})
	if _, err := st.CompanyCreate(ctx, accounting.Company{Tenant: tenant, ID: company, Name: "Acme", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []accounting.Party{{Kind: accounting.Customer, ID: "cust1", Name: "Customer"}, {Kind: accounting.Vendor, ID: "vend1", Name: "Vendor"}} {
		if err := st.PartyCreate(ctx, books, p); err != nil {
			t.Fatal(err)
		}
	}
	return &bundle{svc: svc, store: st, ctx: ctx}
}

func (b *bundle) createDoc(t *testing.T, kind accounting.DocumentKind, id string, prices ...int64) *accounting.Document {
	t.Helper()
	party := "cust1"
	if kind == accounting.Bill {
		party = "vend1"
	}
	p := accounting.DocumentParams{Kind: kind, ID: id, PartyID: party, Currency: "EUR",
		IssueDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, pr := range prices {
		p.Lines = append(p.Lines, accounting.Line{Description: "item", Quantity: 3, UnitPrice: pr, TaxRate: 1950})
	}
	d, err := b.store.DocumentCreate(b.ctx, books, p)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// enqueue adds a job of typ for the test's tenant and company.
func (b *bundle) enqueue(t *testing.T, queue, typ string, data map[string]any) *worker.Job {
	t.Helper()
	j, err := b.svc.Client().Add(b.ctx, queue, worker.JobSpec{Type: typ, Data: data, TenantID: tenant, CompanyID: company})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// finished waits for a job to complete or die.
func (b *bundle) finished(t *testing.T, j *worker.Job) *worker.Job {
	t.Helper()
	var got *worker.Job
	testwait.For(t, 30*time.Second, "job "+j.ID+" to finish", func() bool {
		var err error
		got, err = b.svc.Client().Get(b.ctx, j.Queue, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State == broker.StateCompleted || got.State == broker.StateDead
	})
	return got
}

// run waits for the workflow run a document job started to finish.
func (b *bundle) run(t *testing.T, j *worker.Job) *workflow.Run {
	t.Helper()
	got := b.finished(t, j)
	if got.State != broker.StateCompleted {
		t.Fatalf("job %s is %s: %s", j.ID, got.State, got.LastError)
	}
	var res struct{ RunID string }
	if err := json.Unmarshal(got.Result, &res); err != nil || res.RunID == "" {
		t.Fatalf("job result %s: no run id (%v)", got.Result, err)
	}
	var run *workflow.Run
	testwait.For(t, 30*time.Second, "run "+res.RunID+" to finish", func() bool {
		var err error
		run, err = b.svc.Workflows().Get(b.ctx, res.RunID)
		if err != nil {
			t.Fatal(err)
		}
		return run.State != workflow.StateRunning
	})
	return run
}

func (b *bundle) entries(t *testing.T) int {
	t.Helper()
	n, err := b.store.JournalCount(b.ctx, books)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (b *bundle) balance(t *testing.T, account string) int64 {
	t.Helper()
	tb, err := b.store.TrialBalance(b.ctx, books)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tb {
		if r.Code == account {
			return r.Balance()
		}
	}
	return 0
}

func invoiceData(id string, version int) map[string]any {
	d := map[string]any{"invoiceId": id, "tenantId": tenant, "companyId": company}
	if version > 0 {
		d["version"] = version
	}
	return d
}

func TestInvoiceProcessingPostsEachVersionOnce(t *testing.T) {
	b := setup(t)
	d := b.createDoc(t, accounting.Invoice, "inv_001", 1005, 333)
	run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_001", 0)))
	if run.State != workflow.StateSucceeded {
		t.Fatalf("run %s: %s at %s", run.State, run.Error, run.FailedStep)
	}
	var names []string
	for _, s := range run.Steps {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "validate-invoice,calculate-totals,post-to-ledger,send-notifications" {
		t.Fatalf("steps %v", names)
	}
	if n := b.entries(t); n != 1 {
		t.Fatalf("%d entries after posting version 1, want 1", n)
	}
	if got := b.balance(t, accounting.AccountReceivable); got != d.Total {
		t.Fatalf("receivable %d, want the invoice total %d", got, d.Total)
	}
	// The same version again: the run succeeds, the ledger is unchanged.
	run = b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_001", 1)))
	if run.State != workflow.StateSucceeded || b.entries(t) != 1 {
		t.Fatalf("reposting version 1: run %s, %d entries; want succeeded and 1", run.State, b.entries(t))
	}
	// A new version reverses the old entry and posts its own.
	p := accounting.DocumentParams{Kind: accounting.Invoice, ID: "inv_001", Version: 1, PartyID: "cust1", Currency: "EUR",
		IssueDate: d.IssueDate, Lines: []accounting.Line{{Description: "item", Quantity: 1, UnitPrice: 500, TaxRate: 1000}}}
	if _, err := b.store.DocumentUpdate(b.ctx, books, p); err != nil {
		t.Fatal(err)
	}
	if run = b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_001", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("version 2: run %s: %s", run.State, run.Error)
	}
	if n, got := b.entries(t), b.balance(t, accounting.AccountReceivable); n != 3 || got != 550 {
		t.Fatalf("after version 2: %d entries, receivable %d; want 3 and 550", n, got)
	}
	// A void reverses.
	if _, err := b.store.DocumentVoid(b.ctx, books, accounting.Invoice, "inv_001", 2); err != nil {
		t.Fatal(err)
	}
	if run = b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_001", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("void: run %s: %s", run.State, run.Error)
	}
	if n, got := b.entries(t), b.balance(t, accounting.AccountReceivable); n != 4 || got != 0 {
		t.Fatalf("after the void: %d entries, receivable %d; want 4 and 0", n, got)
	}
	// Each run recorded one notification.
	st, err := b.svc.Client().Stats(b.ctx, jobs.QueueNotifications)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 {
		t.Fatalf("%d notifications recorded, want 4 (one per run)", st.Pending)
	}
}

func TestValidationErrorsFailWithoutRetry(t *testing.T) {
	b := setup(t)
	// A document that does not exist fails validate-invoice once.
	run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("missing", 0)))
	if run.State != workflow.StateFailed || run.FailedStep != "validate-invoice" {
		t.Fatalf("run of a missing invoice: %s at %q, want failed at validate-invoice", run.State, run.FailedStep)
	}
	if s := run.Step("validate-invoice"); s.Attempts != 1 || !strings.Contains(s.Error, "not found") {
		t.Fatalf("validate-invoice: %d attempts, error %q; want 1 attempt and not found", s.Attempts, s.Error)
	}
	// A payload naming another tenant dies at once, before any run.
	j, err := b.svc.Client().Add(b.ctx, jobs.QueueInvoices, worker.JobSpec{Type: jobs.TypeInvoice, TenantID: "t2", MaxAttempts: 3,
		Data: invoiceData("inv_x", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.finished(t, j); got.State != broker.StateDead || got.Attempt != 1 || !strings.Contains(got.LastError, "not the job's tenant") {
		t.Fatalf("job of another tenant: %s after %d attempts (%s); want dead after 1", got.State, got.Attempt, got.LastError)
	}
	if n := b.entries(t); n != 0 {
		t.Fatalf("%d entries, want none", n)
	}
}

func TestBillAndPaymentProcessing(t *testing.T) {
	b := setup(t)
	bill := b.createDoc(t, accounting.Bill, "bill_1", 2000)
	run := b.run(t, b.enqueue(t, jobs.QueueBills, jobs.TypeBill, map[string]any{"billId": "bill_1", "tenantId": tenant, "companyId": company}))
	if run.State != workflow.StateSucceeded || run.Steps[0].Name != "validate-bill" {
		t.Fatalf("bill run %s: %s", run.State, run.Error)
	}
	if got := b.balance(t, accounting.AccountPayable); got != -bill.Total {
		t.Fatalf("payable %d, want -%d", got, bill.Total)
	}
	inv := b.createDoc(t, accounting.Invoice, "inv_1", 1000)
	if run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_1", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("invoice run %s: %s", run.State, run.Error)
	}
	if _, err := b.store.PaymentCreate(b.ctx, books, accounting.Payment{ID: "pay_1", CustomerID: "cust1", Currency: "EUR", Amount: inv.Total + 100,
		Received: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second posts nothing more
		j := b.enqueue(t, jobs.QueuePayments, jobs.TypePayment, map[string]any{"paymentId": "pay_1", "tenantId": tenant, "companyId": company})
		if got := b.finished(t, j); got.State != broker.StateCompleted {
			t.Fatalf("payment job %s: %s", got.State, got.LastError)
		}
	}
	if r, c := b.balance(t, accounting.AccountReceivable), b.balance(t, accounting.AccountCustomerCredit); r != 0 || c != -100 {
		t.Fatalf("after the payment: receivable %d, customer credit %d; want 0 and -100", r, c)
	}
	j := b.enqueue(t, jobs.QueuePayments, jobs.TypePayment, map[string]any{"paymentId": "nope", "tenantId": tenant, "companyId": company})
	if got := b.finished(t, j); got.State != broker.StateDead || got.Attempt != 1 {
		t.Fatalf("payment job of a missing payment: %s after %d attempts, want dead after 1", got.State, got.Attempt)
	}
}

// TestSchemasRejectBadPayloads: each job type's schema, checked by the
// service's client at enqueue.
func TestSchemasRejectBadPayloads(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		typ, queue, idField string
	}{
		{jobs.TypeInvoice, jobs.QueueInvoices, "invoiceId"},
		{jobs.TypeBill, jobs.QueueBills, "billId"},
		{jobs.TypePayment, jobs.QueuePayments, "paymentId"},
	} {
		valid := func() map[string]any {
			return map[string]any{tc.idField: "x1", "tenantId": tenant, "companyId": company}
		}
		missing, mistyped, extra := valid(), valid(), valid()
		delete(missing, "companyId")
		mistyped[tc.idField] = 42
		extra["amount"] = 100
		for _, c := range []struct {
			name string
			data map[string]any
			ptr  string
		}{{"missing", missing, "/companyId"}, {"mistyped", mistyped, "/" + tc.idField}, {"extra", extra, "/amount"}} {
			_, err := b.svc.Client().Add(b.ctx, tc.queue, worker.JobSpec{Type: tc.typ, Data: c.data, TenantID: tenant})
			var se *jobschema.Error
			if !errors.Is(err, worker.ErrInvalidJob) || !errors.As(err, &se) || se.Pointer != c.ptr {
				t.Errorf("%s %s: %v, want a schema error at %s", tc.typ, c.name, err, c.ptr)
			}
		}
		if _, err := b.svc.Client().Add(b.ctx, tc.queue, worker.JobSpec{Type: tc.typ, Data: valid(), TenantID: tenant, Delay: time.Hour}); err != nil {
			t.Errorf("%s valid: %v", tc.typ, err)
		}
	}
}
