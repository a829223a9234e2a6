package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/accounting/jobs"
	"github.com/aibos/worker/accounting/pgstore"
	"github.com/aibos/worker/accounting/sqlitestore"
	"github.com/aibos/worker/service"
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
// (package accounting/jobs) on svc and serves the ledger on its API. The caller closes the store
// after svc has shut down.
func registerAccounting(ctx context.Context, svc *service.Service, cfg *service.Config) (accounting.Store, string, error) {
	st, where, err := openLedger(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	if err := jobs.Register(svc, st); err != nil {
		_ = st.Close()
		return nil, "", err
	}
	svc.SetLedger(st)
	return st, where, nil
}
