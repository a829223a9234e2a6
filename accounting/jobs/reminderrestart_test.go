package jobs_test

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/schedule"
)

// TestRemindersSurviveARestart posts an invoice due today, a few seconds
// from now, in a worker process, kills it once the reminders are
// scheduled, and starts another: the reminder arrives when due.
func TestRemindersSurviveARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	ctx := context.Background()
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	at := now.Add(6 * time.Second).Sub(today).Truncate(time.Second)
	if at >= 24*time.Hour {
		t.Skip("too close to midnight UTC for a reminder due today")
	}
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	dir := t.TempDir()
	st := openLedger(t, dir)
	if err := st.PartyCreate(ctx, books, accounting.Party{Kind: accounting.Customer, ID: "cust1", Name: "Customer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DocumentCreate(ctx, books, accounting.DocumentParams{Kind: accounting.Invoice, ID: "inv_due", PartyID: "cust1", Currency: "EUR",
		IssueDate: today.AddDate(0, 0, -30), DueDate: today, Lines: []accounting.Line{{Description: "x", Quantity: 1, UnitPrice: 4200}}}); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	srv := smtptest.Start(t, smtptest.Options{})
	b, c := openRedis(t, url, prefix)
	once, err := schedule.NewOneTime(b)
	if err != nil {
		t.Fatal(err)
	}
	env := append(workerEnv(url, prefix, dir, srv), reminderAtEnv+"="+at.String())
	startWorker := func() *exec.Cmd {
		cmd, _ := startWorkerProcess(t, env)
		return cmd
	}
	reminders := func() []string {
		l, err := once.ListTenant(ctx, jobs.QueueNotifications, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, j := range l {
			if j.Type == jobs.TypeReminder {
				names = append(names, j.ID)
			}
		}
		return names
	}

	first := startWorker()
	if _, err := c.Add(ctx, jobs.QueueInvoices, worker.JobSpec{Type: jobs.TypeInvoice, TenantID: tenant, CompanyID: company,
		Data: invoiceData("inv_due", 0)}); err != nil {
		t.Fatal(err)
	}
	// On the due date and 7 days after; 3 days before is past.
	testwait.For(t, 60*time.Second, "the invoice's reminders scheduled", func() bool { return len(reminders()) == 2 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// With no worker running, the reminders wait in the broker.
	if got := reminders(); len(got) != 2 {
		t.Fatalf("with no worker running, %d reminders wait, want 2: %v", len(got), got)
	}
	for _, m := range srv.Messages() {
		if strings.HasPrefix(m.Subject, "Reminder") {
			t.Fatalf("a reminder arrived before its time: %s", m.Subject)
		}
	}
	startWorker()
	testwait.For(t, 60*time.Second, "the reminder of inv_due to arrive", func() bool {
		for _, m := range srv.Messages() {
			if m.Subject == "Reminder: invoice inv_due (Acme)" && strings.Contains(m.Body, "EUR 42.00") {
				return true
			}
		}
		return false
	})
	if got := reminders(); len(got) != 1 {
		t.Fatalf("after the due reminder ran, %d wait, want the one 7 days after", len(got))
	}
}
