// Package jobs holds the seed's accounting job types and their processors:
// invoice.processing, bill.processing and payment.processing, posting to an
// accounting.Store. The service registers them by default (see
// cmd/aibos-worker); a team's own binary calls Register the same way.
//
// A job carries ids, never documents: {invoiceId, tenantId, companyId}
// (plus an optional version, the latest when absent), as in the seed. The
// processors read the document from the store. The job's tenant and
// company are its metadata (worker.JobSpec.TenantID, CompanyID): the
// payload's tenantId must match the job's tenant, or the job fails as a
// validation error, so a payload can never reach another tenant's books.
//
// invoice.processing and bill.processing are jobs of the invoices and
// bills queues whose processor starts the workflow of the same name on the
// service's workflow engine (one run per job: the run's idempotency key
// is the job id, so a job retried after a crash starts no second run). The
// workflow is the seed's:
//
//	validate-invoice    InvoiceValidator    3 attempts, 1 s
//	calculate-totals    InvoiceCalculator   2 attempts, 500 ms
//	post-to-ledger      LedgerPoster        5 attempts, 2 s
//	send-notifications  NotificationSender  2 attempts, 1 s
//
// and bill.processing the same with validate-bill and BillValidator,
// BillCalculator. post-to-ledger calls Store.DocumentPost, which posts a
// version in one database transaction together with its idempotency key:
// a step that posts and dies before its completion is recorded runs again
// and changes nothing, so each version is posted exactly once in effect.
// send-notifications records the notification as a job of type
// email.notification in the notifications queue (id: the run id plus
// ":notify", so a retried step adds none twice); RegisterMail registers
// its processor, which sends it once in effect (see package notify).
//
// report.generation (RegisterReports) writes the daily reports of a
// company; with tenantId "all" it is the daily-reports schedule's tick and
// enqueues them per tenant at 02:00 local. invoice.reminder (WithReminders)
// reminds a customer of an open invoice before, on and after its due
// date.
//
// payment.processing (payments queue) posts a recorded payment with
// Store.PaymentPost, also exactly once in effect, applying it to the
// customer's open invoices oldest first.
//
// Errors a retry cannot fix (a malformed payload, a document or payment
// that does not exist, a document that fails validation) are
// recovery.ValidationError and fail at once (worker.NoRetry); a posting
// the document's state refuses (accounting.ErrConflict) is a
// recovery.BusinessLogicError and fails at once too; anything else (the
// database unreachable) is retried.
//
// The payload schemas (Schemas) come with the job types: Register adds them
// to the host's registry, so enqueues of a malformed payload are refused.
package jobs

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/jobschema"
	"github.com/aibos/worker/recovery"
	"github.com/aibos/worker/schedule"
	"github.com/aibos/worker/workflow"
)

// The job types, workflows and queues of the package.
const (
	TypeInvoice      = "invoice.processing"
	TypeBill         = "bill.processing"
	TypePayment      = "payment.processing"
	TypeNotification = "email.notification"

	QueueInvoices      = "invoices"
	QueueBills         = "bills"
	QueuePayments      = "payments"
	QueueNotifications = "notifications"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// Schemas returns the JSON Schema of each job type's payload, by job type.
func Schemas() map[string][]byte { return jobschema.Files(schemaFS, "schemas") }

// Host is what Register wires the job types into: *service.Service is one.
type Host interface {
	Register(name string, p worker.Processor) error
	RegisterWorkflow(w workflow.Workflow) error
	Workflows() *workflow.Engine
	Schemas() *jobschema.Registry
	Client() *worker.Client
}

// Option changes what Register wires.
type Option func(Host, *processors) error

// WithReminders (its OneTime defaults to the host's, as *service.Service
// has one) has posting an invoice schedule its reminders (one-time
// invoice.reminder jobs in the notifications queue, DefaultReminderDays
// from the due date unless cfg says otherwise), posting a payment that
// settles it or a void cancel them, and registers the invoice.reminder
// processor, which records an email.notification.
func WithReminders(cfg ReminderConfig) Option {
	return func(h Host, p *processors) error {
		if o, ok := h.(interface{ OneTime() *schedule.OneTime }); ok && cfg.OneTime == nil {
			cfg.OneTime = o.OneTime()
		}
		if cfg.OneTime == nil {
			return errors.New("reminders: the one-time scheduler is required (the host has none)")
		}
		if cfg.Days == nil {
			cfg.Days = func(string) []int { return DefaultReminderDays }
		}
		if cfg.At == 0 {
			cfg.At = 9 * time.Hour
		}
		if cfg.At < 0 || cfg.At >= 24*time.Hour {
			return fmt.Errorf("reminders: time of day %v is not within a day", cfg.At)
		}
		if cfg.Now == nil {
			cfg.Now = time.Now
		}
		p.reminders = &reminders{cfg: cfg}
		return nil
	}
}

// Register adds the job types' schemas to h, registers their step
// processors and workflows on h's engine and their job processors on h,
// all posting to store. Call it before h starts.
func Register(h Host, store accounting.Store, opts ...Option) error {
	if h == nil || store == nil {
		return errors.New("accounting jobs: register: host and store are required")
	}
	for t, s := range Schemas() {
		if err := h.Schemas().Add(t, s); err != nil {
			return fmt.Errorf("accounting jobs: register: %w", err)
		}
	}
	eng := h.Workflows()
	p := &processors{store: store, client: h.Client()}
	for _, o := range opts {
		if err := o(h, p); err != nil {
			return fmt.Errorf("accounting jobs: register: %w", err)
		}
	}
	steps := map[string]workflow.StepProcessor{
		"InvoiceValidator":   p.validator(accounting.Invoice),
		"InvoiceCalculator":  workflow.StepProcessorFunc(p.calculate),
		"BillValidator":      p.validator(accounting.Bill),
		"BillCalculator":     workflow.StepProcessorFunc(p.calculate),
		"LedgerPoster":       workflow.StepProcessorFunc(p.post),
		"NotificationSender": workflow.StepProcessorFunc(p.notify),
	}
	for name, sp := range steps {
		if err := eng.RegisterStepProcessor(name, sp); err != nil {
			return fmt.Errorf("accounting jobs: register: %w", err)
		}
	}
	for _, w := range []workflow.Workflow{InvoiceWorkflow(), BillWorkflow()} {
		if err := h.RegisterWorkflow(w); err != nil {
			return fmt.Errorf("accounting jobs: register: %w", err)
		}
	}
	procs := map[string]worker.Processor{
		TypeInvoice: starter(eng, TypeInvoice, "invoiceId"),
		TypeBill:    starter(eng, TypeBill, "billId"),
		TypePayment: worker.ProcessorFunc(p.payment),
	}
	if p.reminders != nil {
		procs[TypeReminder] = worker.ProcessorFunc(p.remind)
	}
	for t, proc := range procs {
		if err := h.Register(t, proc); err != nil {
			return fmt.Errorf("accounting jobs: register: %w", err)
		}
	}
	return nil
}

// invalid makes err a validation error that fails the job at once.
func invalid(format string, args ...any) error {
	return worker.NoRetry(recovery.Classify(recovery.ValidationError, fmt.Errorf(format, args...)))
}

// storeErr classifies an error of the store: what a retry cannot fix fails
// at once.
func storeErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, accounting.ErrNotFound), errors.Is(err, accounting.ErrInvalid):
		return invalid("%s: %w", op, err)
	case errors.Is(err, accounting.ErrConflict):
		return worker.NoRetry(recovery.Classify(recovery.BusinessLogicError, fmt.Errorf("%s: %w", op, err)))
	}
	return recovery.Classify(recovery.DatabaseError, fmt.Errorf("%s: %w", op, err))
}

// starter returns the processor of a document job type: it checks the
// payload against the job's tenant and company and starts the workflow of
// the same name, once per job.
func starter(eng *workflow.Engine, name, idField string) worker.Processor {
	return worker.ProcessorFunc(func(ctx context.Context, job *worker.Job) error {
		data, err := payload(job, idField)
		if err != nil {
			return err
		}
		run, _, err := eng.Start(ctx, name, data, workflow.ExecuteOptions{
			TenantID: job.TenantID, CompanyID: data["companyId"].(string), IdempotencyKey: "job:" + job.ID,
		})
		if err != nil {
			return fmt.Errorf("start workflow %s: %w", name, err)
		}
		return worker.SetResult(ctx, map[string]string{"runId": run.ID})
	})
}
