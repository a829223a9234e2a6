package jobs_test

import (
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/workflow"
)

// setupWithReminders is setup with invoice reminders on and the
// notifications queue served (no email.notification processor: the tests
// read the notifications' jobs).
func setupWithReminders(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, func(c *service.Config) {
		c.Queues = append(c.Queues, worker.QueueConfig{Name: jobs.QueueNotifications})
	}, nil, jobs.WithReminders(jobs.ReminderConfig{}))
}

// reminders lists the invoice reminders waiting in the notifications
// queue.
func (b *bundle) reminders(t *testing.T) []*worker.Job {
	t.Helper()
	l, err := b.svc.OneTime().ListTenant(b.ctx, jobs.QueueNotifications, tenant)
	if err != nil {
		t.Fatal(err)
	}
	var out []*worker.Job
	for _, j := range l {
		if j.Type != jobs.TypeReminder {
			continue
		}
		// The listing shows the data as stored, sealed (notifications is an
		// encrypted queue): the client opens it.
		opened, err := b.svc.Client().Get(b.ctx, jobs.QueueNotifications, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, opened)
	}
	return out
}

func TestPayingAnInvoiceCancelsItsReminders(t *testing.T) {
	b := setupWithReminders(t)
	due := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 30)
	for i, id := range []string{"inv_paid", "inv_open"} {
		// inv_paid is the older: payments settle it first.
		p := accounting.DocumentParams{Kind: accounting.Invoice, ID: id, PartyID: "cust1", Currency: "EUR",
			IssueDate: due.AddDate(0, 0, -60+i), DueDate: due,
			Lines: []accounting.Line{{Description: "item", Quantity: 1, UnitPrice: 10000}}}
		if _, err := b.store.DocumentCreate(b.ctx, books, p); err != nil {
			t.Fatal(err)
		}
		if run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData(id, 0))); run.State != workflow.StateSucceeded {
			t.Fatalf("run of %s: %s: %s", id, run.State, run.Error)
		}
	}
	got := b.reminders(t)
	if len(got) != 6 {
		t.Fatalf("%d reminders scheduled for 2 invoices, want 3 each", len(got))
	}
	var runAts []string
	for _, j := range got {
		if strings.Contains(string(j.Data), `"inv_paid"`) {
			runAts = append(runAts, j.RunAt.UTC().Format(time.DateTime))
		}
	}
	want := []string{due.AddDate(0, 0, -3).Add(9 * time.Hour).Format(time.DateTime), due.Add(9 * time.Hour).Format(time.DateTime), due.AddDate(0, 0, 7).Add(9 * time.Hour).Format(time.DateTime)}
	if strings.Join(runAts, ",") != strings.Join(want, ",") {
		t.Errorf("the first invoice's reminders are due %v, want %v (3 days before, on, 7 days after the due date, 09:00 UTC)", runAts, want)
	}
	// A partial payment keeps them; paying the rest cancels the paid
	// invoice's reminders (the oldest invoice is paid first) and only
	// those.
	pay := func(id string, amount int64) {
		t.Helper()
		if _, err := b.store.PaymentCreate(b.ctx, books, accounting.Payment{ID: id, CustomerID: "cust1", Currency: "EUR", Amount: amount, Received: due}); err != nil {
			t.Fatal(err)
		}
		if j := b.finished(t, b.enqueue(t, jobs.QueuePayments, jobs.TypePayment, map[string]any{"paymentId": id, "tenantId": tenant, "companyId": company})); j.State != broker.StateCompleted {
			t.Fatalf("payment %s: %s (%s)", id, j.State, j.LastError)
		}
	}
	pay("pay_1", 4000)
	if n := len(b.reminders(t)); n != 6 {
		t.Fatalf("after a partial payment %d reminders wait, want 6", n)
	}
	pay("pay_2", 6000)
	left := b.reminders(t)
	if len(left) != 3 {
		t.Fatalf("after paying inv_paid %d reminders wait, want inv_open's 3", len(left))
	}
	for _, j := range left {
		if !strings.Contains(string(j.Data), `"inv_open"`) {
			t.Errorf("reminder %s of %s still waits", j.ID, j.Data)
		}
	}
	// Voiding the other cancels its reminders too.
	if _, err := b.store.DocumentVoid(b.ctx, books, accounting.Invoice, "inv_open", 1); err != nil {
		t.Fatal(err)
	}
	if run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_open", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("void run: %s: %s", run.State, run.Error)
	}
	if n := len(b.reminders(t)); n != 0 {
		t.Fatalf("after the void %d reminders wait, want none", n)
	}
}

// TestReminderRecordsTheNotification runs a due reminder: it records an
// invoice.overdue notification with what is still open, and a reminder of
// a paid invoice records none.
func TestReminderRecordsTheNotification(t *testing.T) {
	b := setupWithReminders(t)
	b.createDoc(t, accounting.Invoice, "inv_1", 1000) // 3 × 10.00 + 19.5 % = 35.85, due 2026-01-01: past
	if run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_1", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("run: %s: %s", run.State, run.Error)
	}
	if n := len(b.reminders(t)); n != 0 {
		t.Fatalf("%d reminders scheduled for an invoice whose reminder days are past, want none", n)
	}
	j, err := b.svc.Client().Add(b.ctx, jobs.QueueNotifications, worker.JobSpec{Type: jobs.TypeReminder, TenantID: tenant, CompanyID: company,
		Data: map[string]any{"invoiceId": "inv_1", "tenantId": tenant, "companyId": company, "offsetDays": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.finished(t, j); got.State != broker.StateCompleted {
		t.Fatalf("reminder: %s (%s)", got.State, got.LastError)
	}
	mail, err := b.svc.Client().Get(b.ctx, jobs.QueueNotifications, j.ID+":mail")
	if err != nil {
		t.Fatalf("the reminder's notification: %v", err)
	}
	if s := string(mail.Data); !strings.Contains(s, `"invoice.overdue"`) || !strings.Contains(s, `"total":3585`) || !strings.Contains(s, `"dueDate":"2026-01-01"`) {
		t.Fatalf("notification data %s: want invoice.overdue with 3585 open, due 2026-01-01", s)
	}
}
