package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/pgstore"
	"github.com/aibos/worker/accounting/report"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/service"
	"github.com/aibos/worker/tenant"
)

// LedgerFile is the accounting ledger's SQLite file inside WORKER_DATA_DIR
// when DATABASE_URL is unset.
const LedgerFile = "accounting.db"

// openLedger opens the accounting store the configuration names:
// PostgreSQL at DATABASE_URL, else the SQLite file under WORKER_DATA_DIR.
// It returns where the ledger is, for the log, passwords redacted.
func openLedger(ctx context.Context, cfg *service.Config) (accounting.Store, string, error) {
	if cfg.DatabaseURL != "" {
		st, err := pgstore.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("open the accounting ledger: %w", err)
		}
		return st, service.RedactURL(cfg.DatabaseURL), nil
	}
	path := filepath.Join(cfg.DataDir, LedgerFile)
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return nil, "", fmt.Errorf("open the accounting ledger: %w", err)
	}
	return st, path, nil
}

// registerAccounting opens the ledger, registers the accounting job types
// (package accounting/jobs; with mail enabled, invoice reminders too) on
// svc and serves the ledger on its API. The caller closes the store
// after svc has shut down.
func registerAccounting(ctx context.Context, svc *service.Service, cfg *service.Config, demo bool) (accounting.Store, string, error) {
	var opts []jobs.Option
	if mailEnabled(cfg, demo) {
		days, err := jobs.ParseReminderDays(cfg.InvoiceReminderDays)
		if err != nil {
			return nil, "", &service.ConfigError{Name: "INVOICE_REMINDER_DAYS", Want: err.Error()}
		}
		opts = append(opts, jobs.WithReminders(jobs.ReminderConfig{Days: days}))
	}
	st, where, err := openLedger(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	if err := jobs.Register(svc, st, opts...); err != nil {
		_ = st.Close()
		return nil, "", err
	}
	if err := registerReports(svc, cfg, st); err != nil {
		_ = st.Close()
		return nil, "", err
	}
	svc.SetLedger(st)
	return st, where, nil
}

// registerReports registers report.generation, writing under the data
// dir's reports directory (which the API serves) with the tenants
// registry's time zones.
func registerReports(svc *service.Service, cfg *service.Config, st accounting.Store) error {
	reg, err := tenant.New(svc.Broker())
	if err != nil {
		return fmt.Errorf("register reports: %w", err)
	}
	return jobs.RegisterReports(svc, st, jobs.ReportConfig{
		Dir: report.Dir{Root: cfg.ReportsDir()}, Broker: svc.Broker(), Zones: jobs.RegistryZones(reg),
	})
}

// dailyReports is the seed's daily-reports schedule as serve runs it: a
// quarter-hour tick whose fan-out reports each tenant at 02:00 local (see
// jobs.DailyReportsSpec).
var dailyReports = service.Schedule{Name: "daily-reports", Cron: jobs.DailyReportsSpec, Job: service.ScheduleJob{
	Queue: jobs.QueueReports, Type: jobs.TypeReport, UniqueKey: "daily-reports",
	Data: map[string]any{"reportType": "daily", "tenantId": jobs.AllTenants},
}}

// scheduleDailyReports adds the daily-reports schedule unless the
// configuration names one (the file's wins) or does not serve its queue.
func scheduleDailyReports(cfg *service.Config) {
	for _, s := range cfg.Schedules {
		if s.Name == dailyReports.Name {
			return
		}
	}
	for _, q := range cfg.Queues {
		if q.Name == jobs.QueueReports {
			cfg.Schedules = append(cfg.Schedules, dailyReports)
			return
		}
	}
}
