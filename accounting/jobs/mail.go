package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/notify"
)

// The events an email.notification job tells of.
const (
	EventInvoicePosted   = "invoice.posted"
	EventInvoiceVoided   = "invoice.voided"
	EventBillPosted      = "bill.posted"
	EventBillVoided      = "bill.voided"
	EventPaymentReceived = "payment.received"
	EventInvoiceReminder = "invoice.reminder"
	EventInvoiceOverdue  = "invoice.overdue"
)

// MailConfig configures the email.notification processor.
type MailConfig struct {
	// Mailer sends and records the messages.
	Mailer *notify.Mailer
	// From is the sender address, e.g. "Books <books@acme.example>"; its
	// domain ends every Message-ID.
	From string
	// To receives the notifications of jobs whose payload names no
	// recipient (the party's address is the application's to give, in
	// the payload's "to").
	To string
}

// RegisterMail registers the email.notification processor on h: it
// renders the job's notification from its payload and the company's
// books, and sends it through cfg.Mailer once in effect (see package
// notify), with a Message-ID derived from the tenant and job id and the
// job's creation time as its Date, so every attempt sends the same
// message. Register must have added the schemas.
func RegisterMail(h Host, store accounting.Store, cfg MailConfig) error {
	if h == nil || store == nil || cfg.Mailer == nil {
		return errors.New("accounting jobs: register mail: host, store and mailer are required")
	}
	domain, err := notify.Domain(cfg.From)
	if err != nil {
		return fmt.Errorf("accounting jobs: register mail: %w", err)
	}
	if cfg.To != "" {
		if _, err := notify.Domain(cfg.To); err != nil {
			return fmt.Errorf("accounting jobs: register mail: default recipient: %w", err)
		}
	}
	m := &mailer{store: store, cfg: cfg, domain: domain}
	if err := h.Register(TypeNotification, worker.ProcessorFunc(m.process)); err != nil {
		return fmt.Errorf("accounting jobs: register mail: %w", err)
	}
	return nil
}

type mailer struct {
	store  accounting.Store
	cfg    MailConfig
	domain string
}

// notification is an email.notification job's payload.
type notification struct {
	Event      string `json:"event"`
	DocumentID string `json:"documentId"`
	PartyID    string `json:"partyId"`
	Version    int    `json:"version"`
	Total      int64  `json:"total"`
	Currency   string `json:"currency"`
	DueDate    string `json:"dueDate"`
	To         string `json:"to"`
	TenantID   string `json:"tenantId"`
	CompanyID  string `json:"companyId"`
}

func (m *mailer) process(ctx context.Context, job *worker.Job) error {
	var n notification
	if err := decodeStrict(job, &n); err != nil {
		return err
	}
	switch {
	case job.TenantID == "" || job.CompanyID == "":
		return invalid("job %s has no tenant or company: enqueue it with the books it tells of", job.ID)
	case n.TenantID != "" && n.TenantID != job.TenantID, n.CompanyID != "" && n.CompanyID != job.CompanyID:
		return invalid("payload of job %s names books %s/%s, not the job's %s/%s", job.ID, n.TenantID, n.CompanyID, job.TenantID, job.CompanyID)
	}
	c, err := m.store.CompanyGet(ctx, accounting.Books{Tenant: job.TenantID, Company: job.CompanyID})
	if err != nil {
		return storeErr("read company of job "+job.ID, err)
	}
	msg, err := m.render(&n, c)
	if err != nil {
		return invalid("render notification of job %s: %w", job.ID, err)
	}
	msg.MessageID = notify.MessageID(job.TenantID, job.ID, m.domain)
	msg.Date = job.CreatedAt.UTC()
	res, err := m.cfg.Mailer.Send(ctx, job.TenantID, job.ID, msg)
	if errors.Is(err, notify.ErrContentChanged) {
		return worker.NoRetry(err)
	}
	if err != nil {
		return err
	}
	return worker.SetResult(ctx, res)
}

// render writes the message of n (all but its id and date).
func (m *mailer) render(n *notification, c *accounting.Company) (*notify.Message, error) {
	to := n.To
	if to == "" {
		to = m.cfg.To
	}
	if to == "" {
		return nil, errors.New("the payload names no recipient (to) and no default recipient is configured")
	}
	amount, err := accounting.FormatAmount(n.Total, n.Currency)
	if err != nil {
		return nil, err
	}
	var subject, lead string
	switch n.Event {
	case EventInvoicePosted:
		subject, lead = "Invoice "+n.DocumentID, "Your invoice %s over %s %s is ready."
	case EventInvoiceVoided:
		subject, lead = "Invoice "+n.DocumentID+" voided", "Invoice %s over %s %s has been voided; nothing is due on it."
	case EventBillPosted:
		subject, lead = "Bill "+n.DocumentID+" recorded", "Your bill %s over %s %s has been recorded."
	case EventBillVoided:
		subject, lead = "Bill "+n.DocumentID+" voided", "Bill %s over %s %s has been voided."
	case EventPaymentReceived:
		subject, lead = "Payment "+n.DocumentID+" received", "We received your payment %s of %s %s. Thank you."
	case EventInvoiceReminder:
		subject, lead = "Reminder: invoice "+n.DocumentID, "A reminder: invoice %s has %s %s open."
	case EventInvoiceOverdue:
		subject, lead = "Overdue: invoice "+n.DocumentID, "Invoice %s is overdue with %s %s open."
	default:
		return nil, fmt.Errorf("unknown event %q", n.Event)
	}
	var b strings.Builder
	fmt.Fprintf(&b, lead+"\n", n.DocumentID, n.Currency, amount)
	if n.DueDate != "" {
		fmt.Fprintf(&b, "Due date: %s\n", n.DueDate)
	}
	if n.Version > 0 {
		fmt.Fprintf(&b, "Version: %d\n", n.Version)
	}
	fmt.Fprintf(&b, "\n%s\n", c.Name)
	return &notify.Message{From: m.cfg.From, To: []string{to}, Subject: subject + " (" + c.Name + ")", Body: b.String()}, nil
}
