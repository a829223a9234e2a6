package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/tenant"
)

// The report job type and its queue.
const (
	TypeReport   = "report.generation"
	QueueReports = "reports"
)

// AllTenants is the tenantId of a report.generation job that fans out to
// every tenant (the seed's daily-reports schedule).
const AllTenants = "all"

// DailyReportsSpec is the cron spec of the daily-reports schedule: every
// quarter of an hour, UTC. The reports of a tenant run at the first tick
// at or after 02:00 on the tenant's wall clock (see ReportConfig), and
// every real time zone's offset is a multiple of 15 minutes, so that tick
// is 02:00 local, or 03:00 on the day a DST change skips 02:00.
const DailyReportsSpec = "*/15 * * * *"

// ReportConfig configures the report.generation processor.
type ReportConfig struct {
	// Dir keeps the report files.
	Dir report.Dir
	// Broker keeps, per tenant, the last date its daily reports were
	// enqueued for (documents in the reports queue's scope), so each
	// tenant gets one run per local day whatever the ticks, retries and
	// DST changes.
	Broker broker.Broker
	// Zones returns the registered tenants' time zones (the tenants
	// registry). A tenant with books but no entry is on UTC.
	Zones func(ctx context.Context) (map[string]*time.Location, error)
	// At is the local time of day the daily reports run, in minutes after
	// midnight. Defaults to 120 (02:00, the seed's "0 2 * * *").
	At int
}

// RegisterReports registers the report.generation processor on h, reading
// the books from store and writing the reports into cfg.Dir. Register must
// have added the schemas.
func RegisterReports(h Host, store accounting.Store, cfg ReportConfig) error {
	if h == nil || store == nil || cfg.Broker == nil || cfg.Zones == nil || cfg.Dir.Root == "" {
		return errors.New("accounting jobs: register reports: host, store, broker, zones and directory are required")
	}
	c, ok := cfg.Broker.(broker.Committer)
	if !ok {
		return fmt.Errorf("accounting jobs: register reports: broker %T does not implement broker.Committer", cfg.Broker)
	}
	if cfg.At == 0 {
		cfg.At = 120
	}
	if cfg.At < 0 || cfg.At >= 24*60 {
		return fmt.Errorf("accounting jobs: register reports: time of day %d is not 0..1439 minutes", cfg.At)
	}
	r := &reporter{store: store, cfg: cfg, docs: c, client: h.Client()}
	if err := h.Register(TypeReport, worker.ProcessorFunc(r.process)); err != nil {
		return fmt.Errorf("accounting jobs: register reports: %w", err)
	}
	return nil
}

type reporter struct {
	store  accounting.Store
	cfg    ReportConfig
	docs   broker.Committer
	client *worker.Client
}

type reportPayload struct {
	ReportType string `json:"reportType"`
	TenantID   string `json:"tenantId"`
	CompanyID  string `json:"companyId"`
	Date       string `json:"date"`
}

func (r *reporter) process(ctx context.Context, job *worker.Job) error {
	var p reportPayload
	if err := decodeStrict(job, &p); err != nil {
		return err
	}
	if p.ReportType != "daily" {
		return invalid("payload of job %s: reportType %q is not daily", job.ID, p.ReportType)
	}
	if p.TenantID == AllTenants {
		return r.fanOut(ctx, job)
	}
	switch {
	case job.TenantID == "" || p.TenantID != job.TenantID:
		return invalid("payload of job %s: tenantId %q is not the job's tenant %q", job.ID, p.TenantID, job.TenantID)
	case p.CompanyID == "" || (job.CompanyID != "" && job.CompanyID != p.CompanyID):
		return invalid("payload of job %s: companyId %q is empty or not the job's company %q", job.ID, p.CompanyID, job.CompanyID)
	}
	books := accounting.Books{Tenant: job.TenantID, Company: p.CompanyID}
	date, err := r.date(ctx, job, p.Date)
	if err != nil {
		return err
	}
	rep, err := report.Build(ctx, r.store, books, date)
	if err != nil {
		return storeErr("build reports", err)
	}
	files, err := rep.Files()
	if err != nil {
		return err
	}
	day := date.Format(time.DateOnly)
	if err := r.cfg.Dir.Write(books, day, files); err != nil {
		return err
	}
	return worker.SetResult(ctx, map[string]any{"date": day, "files": len(files)})
}

// date returns the date a tenant's job reports on: the payload's, else
// the tenant's local date when the job was created.
func (r *reporter) date(ctx context.Context, job *worker.Job, s string) (time.Time, error) {
	if s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, invalid("payload of job %s: date %q is not YYYY-MM-DD", job.ID, s)
		}
		return d, nil
	}
	zones, err := r.cfg.Zones(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the tenants' time zones: %w", err)
	}
	loc := zones[job.TenantID]
	if loc == nil {
		loc = time.UTC
	}
	l := job.CreatedAt.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC), nil
}

// DailyDue returns the local date whose daily reports are due at tick in
// loc (at minutes after local midnight), and whether they are: once the
// wall clock has reached at on that date. The caller runs them once per
// date.
func DailyDue(tick time.Time, loc *time.Location, at int) (string, bool) {
	l := tick.In(loc)
	return l.Format(time.DateOnly), l.Hour()*60+l.Minute() >= at
}

const reportDayKind = "report-day"

// fanOut enqueues, for every tenant whose daily reports are due at the
// job's tick and not yet enqueued for that local date, one job per
// company, then records the date. The per-company job ids carry the date,
// so a fan-out retried before it recorded the date adds nothing twice.
func (r *reporter) fanOut(ctx context.Context, job *worker.Job) error {
	tick := job.RunAt
	if h := job.Headers["schedule-tick"]; h != "" {
		t, err := time.Parse(time.RFC3339, h)
		if err != nil {
			return invalid("job %s: schedule-tick %q is not RFC 3339", job.ID, h)
		}
		tick = t
	}
	zones, err := r.cfg.Zones(ctx)
	if err != nil {
		return fmt.Errorf("read the tenants' time zones: %w", err)
	}
	tenants, err := r.store.Tenants(ctx)
	if err != nil {
		return storeErr("list the ledger's tenants", err)
	}
	enqueued := 0
	for _, t := range tenants {
		loc := zones[t]
		if loc == nil {
			loc = time.UTC
		}
		day, due := DailyDue(tick, loc, r.cfg.At)
		if !due {
			continue
		}
		n, err := r.enqueueTenant(ctx, t, day)
		if err != nil {
			return err
		}
		enqueued += n
	}
	return worker.SetResult(ctx, map[string]any{"tick": tick.UTC(), "enqueued": enqueued})
}

// DailyReport returns the report.generation job of one company's daily
// reports for day (YYYY-MM-DD, the tenant's local date), as the daily
// fan-out enqueues it: its id carries the date, so adding it twice adds
// one job.
func DailyReport(tenant, company, day string) worker.JobSpec {
	return worker.JobSpec{
		ID:   "report:daily:" + url.PathEscape(tenant) + ":" + url.PathEscape(company) + ":" + day,
		Type: TypeReport, TenantID: tenant, CompanyID: company,
		Data: map[string]any{"reportType": "daily", "tenantId": tenant, "companyId": company, "date": day},
	}
}

func (r *reporter) enqueueTenant(ctx context.Context, tenant, day string) (int, error) {
	d, err := r.docs.DocGet(ctx, QueueReports, reportDayKind, tenant)
	var version int64
	switch {
	case errors.Is(err, broker.ErrDocNotFound):
	case err != nil:
		return 0, fmt.Errorf("read the daily reports date of %s: %w", tenant, err)
	default:
		var last struct{ Date string }
		if err := json.Unmarshal(d.Body, &last); err != nil {
			return 0, fmt.Errorf("decode the daily reports date of %s: %w", tenant, err)
		}
		if last.Date >= day {
			return 0, nil
		}
		version = d.Version
	}
	companies, err := r.store.CompanyList(ctx, tenant)
	if err != nil {
		return 0, storeErr("list the companies of "+tenant, err)
	}
	for _, c := range companies {
		_, err := r.client.Add(ctx, QueueReports, DailyReport(tenant, c.ID, day))
		if err != nil && !errors.Is(err, worker.ErrDuplicate) {
			return 0, fmt.Errorf("enqueue the daily reports of %s/%s: %w", tenant, c.ID, err)
		}
	}
	body, _ := json.Marshal(map[string]string{"date": day}) // a string map always encodes
	_, err = r.docs.Commit(ctx, &broker.CommitParams{Scope: QueueReports, Docs: []*broker.DocWrite{{
		Kind: reportDayKind, Key: tenant, Version: version, Body: body,
	}}})
	if err != nil {
		// A concurrent fan-out recorded it; its jobs and ours are the
		// same ids.
		if errors.Is(err, broker.ErrConflict) {
			return len(companies), nil
		}
		return 0, fmt.Errorf("record the daily reports date of %s: %w", tenant, err)
	}
	return len(companies), nil
}

// RegistryZones returns a ReportConfig.Zones reading the tenants
// registry.
func RegistryZones(reg *tenant.Registry) func(ctx context.Context) (map[string]*time.Location, error) {
	return func(ctx context.Context) (map[string]*time.Location, error) {
		out := map[string]*time.Location{}
		for offset := 0; offset >= 0; {
			page, err := reg.List(ctx, tenant.ListParams{Offset: offset, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, t := range page.Tenants {
				loc, err := time.LoadLocation(t.TimeZone)
				if err != nil {
					return nil, fmt.Errorf("time zone of tenant %s: %w", t.ID, err)
				}
				out[t.ID] = loc
			}
			offset = page.NextOffset
		}
		return out, nil
	}
}
