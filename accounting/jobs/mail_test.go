package jobs_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/notify"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/workflow"
)

// setupMail is setup with the notifications queue served and
// email.notification sending to a real SMTP server on loopback.
func setupMail(t *testing.T) (*bundle, *smtptest.Server, *notify.Outbox) {
	t.Helper()
	srv := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: "pw"})
	var ob *notify.Outbox
	b := setupWith(t, func(c *service.Config) {
		c.Queues = append(c.Queues, worker.QueueConfig{Name: jobs.QueueNotifications, Concurrency: 2})
	}, func(svc *service.Service, st accounting.Store) {
		s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "mailer", Password: "pw", StartTLS: notify.StartTLSNone})
		if err != nil {
			t.Fatal(err)
		}
		if ob, err = notify.NewOutbox(svc.Broker(), jobs.QueueNotifications); err != nil {
			t.Fatal(err)
		}
		m, err := notify.NewMailer(s, ob)
		if err != nil {
			t.Fatal(err)
		}
		if err := jobs.RegisterMail(svc, st, jobs.MailConfig{Mailer: m, From: "Acme Books <books@acme.test>", To: "ar@acme.test"}); err != nil {
			t.Fatal(err)
		}
	})
	return b, srv, ob
}

func TestNotificationsArriveOverSMTP(t *testing.T) {
	b, srv, ob := setupMail(t)
	b.createDoc(t, accounting.Invoice, "inv_1", 1000)
	if run := b.run(t, b.enqueue(t, jobs.QueueInvoices, jobs.TypeInvoice, invoiceData("inv_1", 0))); run.State != workflow.StateSucceeded {
		t.Fatalf("run %s: %s", run.State, run.Error)
	}
	if _, err := b.store.PaymentCreate(b.ctx, books, accounting.Payment{ID: "pay_1", CustomerID: "cust1", Currency: "EUR", Amount: 1234,
		Received: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	b.finished(t, b.enqueue(t, jobs.QueuePayments, jobs.TypePayment, map[string]any{"paymentId": "pay_1", "tenantId": tenant, "companyId": company}))
	got := srv.Wait(t, 2, 30*time.Second)
	subjects := map[string]string{}
	for _, m := range got {
		subjects[m.Subject] = m.Body
		if m.To[0] != "ar@acme.test" || !strings.HasSuffix(m.MessageID, "@acme.test") {
			t.Errorf("message %s to %v: want to ar@acme.test, Message-ID @acme.test", m.MessageID, m.To)
		}
	}
	if body := subjects["Invoice inv_1 (Acme)"]; !strings.Contains(body, "EUR 35.85") {
		t.Errorf("invoice notification body %q, want the total EUR 35.85 (3 x 10.00 + 19.5 %% tax)", body)
	}
	if body := subjects["Payment pay_1 received (Acme)"]; !strings.Contains(body, "EUR 12.34") {
		t.Errorf("payment notification body %q, want EUR 12.34; subjects %v", body, subjects)
	}
	// The jobs complete with the Message-ID as their result, and the
	// outbox holds both as sent once.
	var l *worker.ListResult
	testwait.For(t, 30*time.Second, "both notification jobs to complete", func() bool {
		var err error
		l, err = b.svc.Client().List(b.ctx, worker.ListParams{Queue: jobs.QueueNotifications, State: broker.StateCompleted})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Jobs) == 2
	})
	entries, err := ob.List(b.ctx)
	if err != nil || len(entries) != 2 {
		t.Fatalf("outbox %+v, %v; want 2 entries", entries, err)
	}
	for _, e := range entries {
		if e.State != notify.StateSent || e.Sends != 1 || e.Tenant != tenant {
			t.Errorf("outbox entry %+v: want sent once for %s", e, tenant)
		}
	}
	var res notify.Result
	if err := json.Unmarshal(l.Jobs[0].Result, &res); err != nil || res.MessageID == "" {
		t.Fatalf("notification job result %s: want its Message-ID", l.Jobs[0].Result)
	}
}

func TestNotificationWithoutRecipientOrBooksFails(t *testing.T) {
	b, srv, _ := setupMail(t)
	// Another company's books do not exist: the job dies at once.
	j, err := b.svc.Client().Add(b.ctx, jobs.QueueNotifications, worker.JobSpec{Type: jobs.TypeNotification, TenantID: tenant, CompanyID: "nope",
		MaxAttempts: 3, Data: map[string]any{"event": "invoice.posted", "documentId": "inv_1", "total": 1, "currency": "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := b.finished(t, j); got.State != broker.StateDead || got.Attempt != 1 || !strings.Contains(got.LastError, "not found") {
		t.Fatalf("job for unknown books: %s after %d (%s); want dead after 1, not found", got.State, got.Attempt, got.LastError)
	}
	// A malformed payload is refused at enqueue by the schema.
	_, err = b.svc.Client().Add(b.ctx, jobs.QueueNotifications, worker.JobSpec{Type: jobs.TypeNotification, TenantID: tenant, CompanyID: company,
		Data: map[string]any{"event": "invoice.exploded", "documentId": "inv_1", "total": 1, "currency": "EUR"}})
	if err == nil || !strings.Contains(err.Error(), "event") {
		t.Fatalf("enqueue of an unknown event = %v, want a schema error naming event", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages arrived, want none", n)
	}
}
