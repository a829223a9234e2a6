package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aibos/worker/accounting"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/adminclient"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/ops"
	"github.com/aibos/worker/service"
)

// ReportsDir is where report files live inside WORKER_DATA_DIR, the
// directory data.cleanup trims.
const ReportsDir = "reports"

// backupDir is where backups go: the backup section's dir, else
// "backups" beside the data directory.
func backupDir(cfg *service.Config) string {
	if cfg.Backup != nil && cfg.Backup.Dir != "" {
		return cfg.Backup.Dir
	}
	return filepath.Join(filepath.Dir(filepath.Clean(cfg.DataDir)), "backups")
}

// registerOps registers the operations job types (package ops) on svc:
// data.cleanup and backup always, data.sync when the file has a sync
// section, pushing entries of ledger.
func registerOps(svc *service.Service, cfg *service.Config, ledger accounting.Store) error {
	var p ops.Processors
	var err error
	if s := cfg.Sync; s != nil {
		targets := map[string]ops.SyncTarget{}
		if s.URL != "" {
			targets[""] = ops.SyncTarget{URL: s.URL, Secret: s.Secret}
		}
		for id, t := range s.Tenants {
			targets[id] = ops.SyncTarget{URL: t.URL, Secret: t.Secret}
		}
		if p.Sync, err = ops.NewSync(ops.SyncConfig{Store: ledger, Targets: targets, PageSize: s.PageSize}); err != nil {
			return err
		}
	}
	p.Cleanup, err = ops.NewCleanup(ops.CleanupConfig{
		Broker: svc.Broker(), Audit: svc.Audit(), AuditRetention: time.Duration(cfg.AuditRetentionDays) * 24 * time.Hour,
		ReportsDir: filepath.Join(cfg.DataDir, ReportsDir),
	})
	if err != nil {
		return err
	}
	keep := 0
	if cfg.Backup != nil {
		keep = cfg.Backup.Keep
	}
	if p.Backup, err = ops.NewBackup(ops.BackupConfig{DataDir: cfg.DataDir, First: backupOrder, Dir: backupDir(cfg), Keep: keep, Redis: svc.Redis()}); err != nil {
		return err
	}
	return ops.Register(svc, p)
}

// newRestoreCmd is `aibos-worker restore BACKUP`: it brings an embedded
// backup back into the data directory, offline.
func newRestoreCmd(ctx context.Context, stdout io.Writer, load func(*cobra.Command) (*service.Config, error)) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Restore a backup (a directory the backup job made) into WORKER_DATA_DIR, with the service stopped",
		Long: "Restore checks every file of the backup against its manifest and every SQLite database with PRAGMA integrity_check,\n" +
			"then copies them into the data directory (WORKER_DATA_DIR). It refuses a data directory that holds anything unless\n" +
			"--force, which replaces the backup's files and leaves the others; and it refuses while a service runs on the directory.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if err := checkStopped(cfg.DataDir); err != nil {
				return err
			}
			m, err := ops.Restore(ctx, args[0], cfg.DataDir, force)
			switch {
			case errors.Is(err, ops.ErrDataDirNotEmpty):
				return &exitError{exitConflict, err}
			case err != nil:
				return runtimeError(err)
			}
			fmt.Fprintf(stdout, "restored the backup of %s (%d files) into %s\n", m.Time.Format(time.RFC3339), len(m.Files), cfg.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore into a data directory that is not empty, replacing the backup's files")
	return cmd
}

// checkStopped refuses a data directory a running service holds: the
// embedded job store's lock tells.
func checkStopped(dataDir string) error {
	path := filepath.Join(dataDir, service.StoreFile)
	if !fileExists(path) {
		return nil
	}
	b, err := sqlitebroker.Open(path, sqlitebroker.Config{})
	if errors.Is(err, sqlitebroker.ErrInUse) {
		return &exitError{exitConflict, fmt.Errorf("restore: a service runs on %s: stop it first (%w)", dataDir, err)}
	}
	if err != nil {
		return nil // a damaged store is what a restore replaces
	}
	return b.Close()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newBackupCmd builds `aibos-worker backup now`: a backup job through the
// API (roles and the audit trail apply), waited for.
func newBackupCmd(o *apiOpts) *cobra.Command {
	var queue string
	var timeout time.Duration
	now := &cobra.Command{
		Use:   "now",
		Short: "Back up now: add a backup job (over the API) and wait for it; prints where the backup went",
		Args:  cobra.NoArgs,
		RunE: o.run(func(ctx context.Context, c *adminclient.Client, _ []string) error {
			j, err := c.Enqueue(ctx, queue, admin.EnqueueRequest{Type: ops.TypeBackup}, "")
			if err != nil {
				return apiError("enqueue a backup job to queue "+queue, err)
			}
			deadline := time.Now().Add(timeout)
			for j.State != "completed" && j.State != "dead" && j.State != "cancelled" {
				if time.Now().After(deadline) {
					return &exitError{exitFail, fmt.Errorf("backup job %s is still %s after %v", j.ID, j.State, timeout)}
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				id := j.ID
				if j, err = c.Job(ctx, id, queue); err != nil {
					return apiError("read backup job "+id, err)
				}
			}
			if j.State != "completed" {
				return &exitError{exitFail, fmt.Errorf("backup job %s ended %s: %s", j.ID, j.State, j.LastError)}
			}
			var m ops.Manifest
			if err := json.Unmarshal(j.Result, &m); err != nil {
				return &exitError{exitFail, fmt.Errorf("read the result of backup job %s: %w", j.ID, err)}
			}
			return o.show(&m, func(w *tabwriter.Writer) { backupTable(w, &m) })
		}),
	}
	now.Flags().StringVar(&queue, "queue", "reports", "the queue the backup job goes to")
	now.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the backup")
	return o.group("backup", "Back up the stores through the service (restore is offline: aibos-worker restore)", now)
}

// backupTable shows what a backup holds.
func backupTable(w *tabwriter.Writer, m *ops.Manifest) {
	if m.Dir != "" {
		row(w, "BACKUP", m.Dir)
	}
	for _, f := range m.Files {
		row(w, "FILE", f.Name, fmt.Sprintf("%d bytes", f.Bytes))
	}
	if m.Redis != nil {
		for _, n := range m.Redis.Nodes {
			row(w, "REDIS", n.Addr, "saved "+n.LastSave.Format(time.RFC3339), n.Status, n.RDBFile)
		}
	}
	for _, r := range m.Removed {
		row(w, "REMOVED", r)
	}
}

// backupOrder is the order a backup copies the data directory's files in
// (ops.BackupConfig.First): the audit trail's head file before the job
// store, so that the head never names entries the copied trail lacks (a
// head behind the trail is the normal state, one ahead reads as a
// truncated trail); then the job store before the ledger, so that no
// posting the job store has as done is missing from the ledger copy.
var backupOrder = []string{audit.HeadFileName, service.StoreFile}
