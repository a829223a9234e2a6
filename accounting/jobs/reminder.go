package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/schedule"
)

// TypeReminder is the job type of an invoice's reminders.
const TypeReminder = "invoice.reminder"

// DefaultReminderDays are the reminders of an invoice, in days from its
// due date: 3 days before, on it, and 7 days after.
var DefaultReminderDays = []int{-3, 0, 7}

// ReminderConfig configures the invoice reminders.
type ReminderConfig struct {
	// OneTime schedules the reminders, in the notifications queue.
	// Defaults to the host's.
	OneTime *schedule.OneTime
	// Days returns a tenant's reminder offsets in days from the due date.
	// Defaults to DefaultReminderDays for every tenant.
	Days func(tenant string) []int
	// At is the time of day (UTC, after midnight) a reminder is due on
	// its day. Defaults to 9 hours.
	At time.Duration
	// Now is the clock that decides which reminders are already past
	// when an invoice is posted (those are not scheduled). Defaults to
	// time.Now.
	Now func() time.Time
}

// reminders schedules and cancels an invoice's reminders. A reminder is
// the one-time job "invoice-reminder:<hash of the books and invoice>:v<version>:<offset>",
// so scheduling twice (a retried step) adds nothing, and every reminder
// of an invoice, whatever its version or the offsets configured then, is
// found by its prefix to be cancelled.
type reminders struct {
	cfg ReminderConfig
}

func reminderPrefix(b accounting.Books, invoice string) string {
	h := sha256.Sum256([]byte(b.Tenant + "\x00" + b.Company + "\x00" + invoice))
	return "invoice-reminder:" + hex.EncodeToString(h[:12]) + ":"
}

// posted brings the reminders in line with the posted version d: the
// earlier versions' are cancelled and, unless d is void, d's are
// scheduled (those not yet past).
func (r *reminders) posted(ctx context.Context, b accounting.Books, d *accounting.Document) error {
	prefix := reminderPrefix(b, d.ID)
	keep := prefix + "v" + strconv.Itoa(d.Version) + ":"
	if d.Status == accounting.Void {
		keep = ""
	}
	if err := r.cancel(ctx, b, prefix, keep); err != nil {
		return err
	}
	if d.Status == accounting.Void {
		return nil
	}
	now := r.cfg.Now()
	for _, off := range r.cfg.Days(b.Tenant) {
		at := d.DueDate.AddDate(0, 0, off).Add(r.cfg.At)
		if at.Before(now) {
			continue
		}
		name := keep + strconv.Itoa(off)
		// A map of strings and numbers always encodes.
		data, _ := json.Marshal(map[string]any{"invoiceId": d.ID, "customerId": d.PartyID, "tenantId": b.Tenant,
			"companyId": b.Company, "version": d.Version, "offsetDays": off})
		_, err := r.cfg.OneTime.Schedule(ctx, name, at, schedule.JobTemplate{
			Queue: QueueNotifications, Type: TypeReminder, TenantID: b.Tenant, CompanyID: b.Company, MaxAttempts: 5,
			Data: data,
		})
		if err != nil {
			return fmt.Errorf("schedule reminder %s of invoice %s: %w", name, d.ID, err)
		}
	}
	return nil
}

// settled cancels every pending reminder of the invoice (paid or void).
func (r *reminders) settled(ctx context.Context, b accounting.Books, invoice string) error {
	return r.cancel(ctx, b, reminderPrefix(b, invoice), "")
}

// cancel cancels the invoice's reminders not yet started whose names start
// with prefix, except those starting with keep (when set).
func (r *reminders) cancel(ctx context.Context, b accounting.Books, prefix, keep string) error {
	pending, err := r.cfg.OneTime.ListTenant(ctx, QueueNotifications, b.Tenant)
	if err != nil {
		return err
	}
	for _, j := range pending {
		name := strings.TrimPrefix(j.ID, schedule.OneTimeJobID(""))
		if !strings.HasPrefix(name, prefix) || (keep != "" && strings.HasPrefix(name, keep)) {
			continue
		}
		_, err := r.cfg.OneTime.Cancel(ctx, QueueNotifications, name)
		// Started or finished since the listing: the reminder checks the
		// invoice itself when it runs.
		if err != nil && !errors.Is(err, broker.ErrWrongState) && !errors.Is(err, broker.ErrNotFound) {
			return fmt.Errorf("cancel reminder %s: %w", name, err)
		}
	}
	return nil
}

// remind is the invoice.reminder processor: unless the invoice is paid or
// void by now, it records the reminder's email.notification (id: the
// reminder's job id plus ":mail", so a retry adds none twice).
func (p *processors) remind(ctx context.Context, job *worker.Job) error {
	data, err := payload(job, "invoiceId")
	if err != nil {
		return err
	}
	books := accounting.Books{Tenant: job.TenantID, Company: data["companyId"].(string)}
	id := data["invoiceId"].(string)
	d, err := p.store.DocumentGet(ctx, books, accounting.Invoice, id, 0)
	if err != nil {
		return storeErr("read invoice "+id, err)
	}
	open, err := p.openAmount(ctx, books, id)
	if err != nil {
		return err
	}
	if d.Status == accounting.Void || open == 0 {
		return worker.SetResult(ctx, map[string]any{"skipped": "the invoice is paid or void"})
	}
	off, _ := strconv.Atoi(fmt.Sprint(data["offsetDays"]))
	event := EventInvoiceReminder
	if off > 0 {
		event = EventInvoiceOverdue
	}
	_, err = p.client.Add(ctx, QueueNotifications, worker.JobSpec{
		ID: job.ID + ":mail", Type: TypeNotification, TenantID: books.Tenant, CompanyID: books.Company,
		Data: map[string]any{"event": event, "partyId": d.PartyID, "documentId": d.ID, "version": d.Version,
			"total": open, "currency": d.Currency, "dueDate": d.DueDate.Format(time.DateOnly)},
	})
	if err != nil && !errors.Is(err, worker.ErrDuplicate) {
		return fmt.Errorf("record the reminder of invoice %s: %w", id, err)
	}
	return worker.SetResult(ctx, map[string]any{"event": event, "open": open})
}

// openAmount returns what is still open on a posted invoice (0 if it is
// settled or not posted).
func (p *processors) openAmount(ctx context.Context, b accounting.Books, invoice string) (int64, error) {
	items, err := p.store.OpenReceivables(ctx, b, time.Now())
	if err != nil {
		return 0, storeErr("read the open receivables", err)
	}
	for _, it := range items {
		if it.ID == invoice {
			return it.Open, nil
		}
	}
	return 0, nil
}

// ParseReminderDays parses reminder offsets per tenant: "-3,0,7" for
// every tenant, then optionally ";tenant=-1,14" overrides, and "none"
// for no reminders ("-3,0,7;acme=none"). It returns the Days function of
// a ReminderConfig.
func ParseReminderDays(s string) (func(tenant string) []int, error) {
	parts := strings.Split(s, ";")
	def, err := parseDays(parts[0])
	if err != nil {
		return nil, err
	}
	per := map[string][]int{}
	for _, p := range parts[1:] {
		t, days, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || t == "" {
			return nil, fmt.Errorf("%q is not tenant=days", p)
		}
		if per[t], err = parseDays(days); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t, err)
		}
	}
	return func(tenant string) []int {
		if d, ok := per[tenant]; ok {
			return d
		}
		return def
	}, nil
}

func parseDays(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return []int{}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < -365 || n > 365 {
			return nil, fmt.Errorf("%q is not a whole number of days from -365 to 365", f)
		}
		out = append(out, n)
	}
	return out, nil
}
