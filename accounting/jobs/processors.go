package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/workflow"
)

// InvoiceWorkflow returns the seed's invoice.processing workflow.
func InvoiceWorkflow() workflow.Workflow {
	return documentWorkflow(TypeInvoice, "validate-invoice", "Invoice")
}

// BillWorkflow returns bill.processing: invoice.processing's steps for a
// bill.
func BillWorkflow() workflow.Workflow {
	return documentWorkflow(TypeBill, "validate-bill", "Bill")
}

func documentWorkflow(name, validate, prefix string) workflow.Workflow {
	return workflow.Workflow{Name: name, Steps: []workflow.Step{
		{Name: validate, Processor: prefix + "Validator", RetryAttempts: 3, RetryDelay: time.Second},
		{Name: "calculate-totals", Processor: prefix + "Calculator", RetryAttempts: 2, RetryDelay: 500 * time.Millisecond},
		{Name: "post-to-ledger", Processor: "LedgerPoster", RetryAttempts: 5, RetryDelay: 2 * time.Second},
		{Name: "send-notifications", Processor: "NotificationSender", RetryAttempts: 2, RetryDelay: time.Second},
	}}
}

// processors holds what the step and job processors share.
type processors struct {
	store     accounting.Store
	client    *worker.Client
	reminders *reminders // nil: no reminders
}

// decodeStrict decodes a job's data into v, refusing fields v does not
// have: a misspelt field is an error the caller sees, not a silent zero.
func decodeStrict(job *worker.Job, v any) error {
	dec := json.NewDecoder(bytes.NewReader(job.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("decode payload of job %s: %w", job.ID, err)
	}
	return nil
}

// payload decodes a document or payment job's data and checks it against
// the job's tenant and company: the payload never chooses the books.
func payload(job *worker.Job, idField string) (workflow.Data, error) {
	data := workflow.Data{}
	dec := json.NewDecoder(bytes.NewReader(job.Data))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return nil, invalid("decode payload of job %s: %w", job.ID, err)
	}
	for _, f := range []string{idField, "tenantId", "companyId"} {
		if s, ok := data[f].(string); !ok || s == "" {
			return nil, invalid("payload of job %s: %s must be a non-empty string", job.ID, f)
		}
	}
	switch {
	case job.TenantID == "":
		return nil, invalid("job %s has no tenant: enqueue it with the tenant whose books it posts to", job.ID)
	case data["tenantId"] != job.TenantID:
		return nil, invalid("payload of job %s: tenantId %q is not the job's tenant %q", job.ID, data["tenantId"], job.TenantID)
	case job.CompanyID != "" && data["companyId"] != job.CompanyID:
		return nil, invalid("payload of job %s: companyId %q is not the job's company %q", job.ID, data["companyId"], job.CompanyID)
	}
	return data, nil
}

// docRef is what a document step reads from its data.
type docRef struct {
	kind    accounting.DocumentKind
	id      string
	version int // 0: the latest
	books   accounting.Books
}

// ref reads the document a step works on. The tenant is the run's; the
// starter checked that the payload's tenant and company are the job's.
func ref(step *workflow.StepInfo, data workflow.Data) (*docRef, error) {
	r := &docRef{kind: accounting.Invoice}
	field := "invoiceId"
	if step.Workflow == TypeBill {
		r.kind, field = accounting.Bill, "billId"
	}
	r.id, _ = data[field].(string)
	company, _ := data["companyId"].(string)
	if r.id == "" || company == "" {
		return nil, invalid("step %s of run %s: data has no %s or companyId", step.Step.Name, step.RunID, field)
	}
	if t, _ := data["tenantId"].(string); t != step.TenantID {
		return nil, invalid("step %s of run %s: tenantId %q is not the run's tenant %q", step.Step.Name, step.RunID, t, step.TenantID)
	}
	r.books = accounting.Books{Tenant: step.TenantID, Company: company}
	if v, ok := data["version"]; ok {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil || n < 1 {
			return nil, invalid("step %s of run %s: version %v is not a positive integer", step.Step.Name, step.RunID, v)
		}
		r.version = n
	}
	return r, nil
}

// load reads the document version a step works on.
func (p *processors) load(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (*docRef, *accounting.Document, error) {
	r, err := ref(step, data)
	if err != nil {
		return nil, nil, err
	}
	d, err := p.store.DocumentGet(ctx, r.books, r.kind, r.id, r.version)
	if err != nil {
		return nil, nil, storeErr(fmt.Sprintf("read %s %s", r.kind, r.id), err)
	}
	return r, d, nil
}

// validator returns the seed's InvoiceValidator (or BillValidator): it
// pins the version the run posts and checks the document.
func (p *processors) validator(kind accounting.DocumentKind) workflow.StepProcessor {
	return workflow.StepProcessorFunc(func(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
		_, d, err := p.load(ctx, step, data)
		if err != nil {
			return nil, err
		}
		if d.Kind != kind {
			return nil, invalid("%s %s is a %s", kind, d.ID, d.Kind)
		}
		var errs []string
		if d.Status != accounting.Void {
			if len(d.Lines) == 0 {
				errs = append(errs, "it has no lines")
			}
			if d.DueDate.Before(d.IssueDate) {
				errs = append(errs, "it is due before it is issued")
			}
		}
		if len(errs) > 0 {
			return nil, invalid("%s %s version %d failed validation: %v", kind, d.ID, d.Version, errs)
		}
		data["version"] = d.Version
		data["validation"] = map[string]any{"isValid": true, "errors": []string{}}
		return data, nil
	})
}

// calculate is the seed's InvoiceCalculator: it computes the version's
// totals per line (accounting.Calculate: rounding half up per line) and
// checks them against the stored ones.
func (p *processors) calculate(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
	_, d, err := p.load(ctx, step, data)
	if err != nil {
		return nil, err
	}
	if d.Status == accounting.Void {
		data["totals"] = map[string]any{"subtotal": 0, "tax": 0, "total": 0, "currency": d.Currency}
		return data, nil
	}
	t, err := accounting.Calculate(d.Lines)
	if err != nil {
		return nil, invalid("calculate totals of %s %s: %w", d.Kind, d.ID, err)
	}
	if t != d.Totals {
		return nil, invalid("%s %s version %d: stored totals %+v differ from the lines' %+v", d.Kind, d.ID, d.Version, d.Totals, t)
	}
	data["totals"] = map[string]any{"subtotal": t.Subtotal, "tax": t.Tax, "total": t.Total, "currency": d.Currency}
	return data, nil
}

// post is the seed's LedgerPoster: one Store.DocumentPost, exactly once in
// effect whatever the retries.
func (p *processors) post(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
	r, err := ref(step, data)
	if err != nil {
		return nil, err
	}
	if r.version == 0 {
		return nil, invalid("step %s of run %s: no version to post (the validator pins it)", step.Step.Name, step.RunID)
	}
	ps, err := p.store.DocumentPost(ctx, r.books, r.kind, r.id, r.version)
	if err != nil {
		return nil, storeErr(fmt.Sprintf("post %s %s version %d", r.kind, r.id, r.version), err)
	}
	if p.reminders != nil && r.kind == accounting.Invoice {
		d, err := p.store.DocumentGet(ctx, r.books, r.kind, r.id, r.version)
		if err != nil {
			return nil, storeErr(fmt.Sprintf("read %s %s version %d", r.kind, r.id, r.version), err)
		}
		if err := p.reminders.posted(ctx, r.books, d); err != nil {
			return nil, err
		}
	}
	out := map[string]any{}
	if ps.Entry != nil {
		out["entryId"] = ps.Entry.ID
	}
	if ps.Reversal != nil {
		out["reversalId"] = ps.Reversal.ID
	}
	if ps.Credit != nil {
		out["creditEntryId"] = ps.Credit.ID
	}
	data["posting"] = out
	return data, nil
}

// notify is the seed's NotificationSender: it records the notification as
// an email.notification job, once per run.
func (p *processors) notify(ctx context.Context, step *workflow.StepInfo, data workflow.Data) (workflow.Data, error) {
	_, d, err := p.load(ctx, step, data)
	if err != nil {
		return nil, err
	}
	event := string(d.Kind) + ".posted"
	if d.Status == accounting.Void {
		event = string(d.Kind) + ".voided"
	}
	id := step.RunID + ":notify"
	company, _ := data["companyId"].(string)
	_, err = p.client.Add(ctx, QueueNotifications, worker.JobSpec{
		ID: id, Type: TypeNotification, TenantID: step.TenantID, CompanyID: company,
		Data: map[string]any{
			"event": event, "partyId": d.PartyID, "documentId": d.ID, "version": d.Version,
			"total": d.Total, "currency": d.Currency,
		},
	})
	if err != nil && !errors.Is(err, worker.ErrDuplicate) {
		return nil, fmt.Errorf("record notification of %s %s: %w", d.Kind, d.ID, err)
	}
	data["notification"] = map[string]any{"jobId": id, "event": event}
	return data, nil
}

// payment posts a payment job's payment.
func (p *processors) payment(ctx context.Context, job *worker.Job) error {
	data, err := payload(job, "paymentId")
	if err != nil {
		return err
	}
	books := accounting.Books{Tenant: job.TenantID, Company: data["companyId"].(string)}
	id := data["paymentId"].(string)
	ps, err := p.store.PaymentPost(ctx, books, id)
	if err != nil {
		return storeErr("post payment "+id, err)
	}
	if err := p.notifyPayment(ctx, job, books, id, ps.Entry); err != nil {
		return err
	}
	if err := p.cancelSettled(ctx, books, ps.Applications); err != nil {
		return err
	}
	return worker.SetResult(ctx, map[string]any{"entryId": ps.Entry.ID, "applications": ps.Applications})
}

// notifyPayment records the payment.received notification of a posted
// payment as an email.notification job whose id is the payment job's
// plus ":notify", so a retried payment job adds none twice.
// The amount is the entry's cash debit.
func (p *processors) notifyPayment(ctx context.Context, job *worker.Job, books accounting.Books, id string, e *accounting.JournalEntry) error {
	var amount int64
	var currency string
	for _, l := range e.Lines {
		if l.Account == accounting.AccountCash {
			amount, currency = amount+l.Debit, l.Currency
		}
	}
	_, err := p.client.Add(ctx, QueueNotifications, worker.JobSpec{
		ID: job.ID + ":notify", Type: TypeNotification, TenantID: books.Tenant, CompanyID: books.Company,
		Data: map[string]any{"event": EventPaymentReceived, "documentId": id, "total": amount, "currency": currency},
	})
	if err != nil && !errors.Is(err, worker.ErrDuplicate) {
		return fmt.Errorf("record notification of payment %s: %w", id, err)
	}
	return nil
}

// cancelSettled cancels the reminders of the invoices a payment settled
// in full.
func (p *processors) cancelSettled(ctx context.Context, books accounting.Books, apps []accounting.Application) error {
	if p.reminders == nil {
		return nil
	}
	for _, a := range apps {
		open, err := p.openAmount(ctx, books, a.InvoiceID)
		if err != nil {
			return err
		}
		if open > 0 {
			continue
		}
		if err := p.reminders.settled(ctx, books, a.InvoiceID); err != nil {
			return fmt.Errorf("cancel the reminders of invoice %s: %w", a.InvoiceID, err)
		}
	}
	return nil
}
