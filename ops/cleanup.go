package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
)

// TypeCleanup is the job type of the seed's monthly cleanup.
const TypeCleanup = "data.cleanup"

// CleanupConfig configures data.cleanup.
type CleanupConfig struct {
	// Broker holds the jobs to clean up; it must implement
	// broker.Committer (both brokers of this module do). Required.
	Broker broker.Broker
	// Audit, when set, is trimmed of the entries older than AuditRetention
	// through its signed checkpoint (audit.Trail.Trim), so that the chain
	// still verifies.
	Audit *audit.Trail
	// AuditRetention is how long audit entries are kept: the trail's own
	// retention (WORKER_AUDIT_RETENTION_DAYS), not the job's, because a
	// year-end review needs the year. 0 keeps them.
	AuditRetention time.Duration
	// ReportsDir, when set, holds report files: files in it (at any depth)
	// last modified before the retention are removed.
	ReportsDir string
	// Now reads the clock retention is measured from. Defaults to the
	// broker's clock, the one jobs' FinishedAt is taken on.
	Now func(ctx context.Context) (time.Time, error)
}

// Cleanup is the data.cleanup processor.
type Cleanup struct {
	cfg CleanupConfig
	cm  broker.Committer
}

// NewCleanup checks cfg and returns the processor.
func NewCleanup(cfg CleanupConfig) (*Cleanup, error) {
	cm, ok := cfg.Broker.(broker.Committer)
	if !ok {
		return nil, errors.New("data.cleanup: the broker is required and must implement broker.Committer")
	}
	if cfg.AuditRetention < 0 {
		return nil, fmt.Errorf("data.cleanup: audit retention %v is negative", cfg.AuditRetention)
	}
	if cfg.Now == nil {
		cfg.Now = cm.Now
	}
	return &Cleanup{cfg: cfg, cm: cm}, nil
}

// CleanupPayload is a data.cleanup job's data, as the seed schedules it.
type CleanupPayload struct {
	// RetentionDays: finished jobs and report files older than this many
	// days are removed. At least 1.
	RetentionDays int `json:"retentionDays"`
}

// CleanupResult counts what a cleanup removed.
type CleanupResult struct {
	Completed int `json:"completed"` // completed jobs
	Dead      int `json:"dead"`      // dead jobs
	Audit     int `json:"audit"`     // audit entries, through the checkpoint
	Reports   int `json:"reports"`   // report files
}

// Process runs one data.cleanup job: its result is a CleanupResult. The
// cleanup works on every tenant's data, so a job with a tenant is refused.
func (c *Cleanup) Process(ctx context.Context, job *worker.Job) error {
	var p CleanupPayload
	if err := json.Unmarshal(job.Data, &p); err != nil {
		return invalid("decode the payload of job %s: %w", job.ID, err)
	}
	if p.RetentionDays < 1 {
		return invalid("payload of job %s: retentionDays %d is below 1", job.ID, p.RetentionDays)
	}
	if job.TenantID != "" {
		return invalid("job %s has tenant %q: data.cleanup cleans every tenant's data and is an operator's job", job.ID, job.TenantID)
	}
	res, err := c.Run(ctx, time.Duration(p.RetentionDays)*24*time.Hour)
	if err != nil {
		return err
	}
	return worker.SetResult(ctx, res)
}

// Run removes what is older than retention by the configured clock:
// completed and dead jobs of every queue (finished before the cut),
// report files, and audit entries past the audit retention. Jobs in other
// states are never touched. Several processes may clean at once.
func (c *Cleanup) Run(ctx context.Context, retention time.Duration) (*CleanupResult, error) {
	if retention <= 0 {
		return nil, fmt.Errorf("data.cleanup: retention %v is not positive", retention)
	}
	now, err := c.cfg.Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("data.cleanup: read the clock: %w", err)
	}
	cut := now.Add(-retention)
	res := &CleanupResult{}
	queues, err := c.cfg.Broker.QueueList(ctx)
	if err != nil {
		return nil, fmt.Errorf("data.cleanup: list queues: %w", err)
	}
	for _, q := range queues {
		for _, st := range []struct {
			state broker.State
			n     *int
		}{{broker.StateCompleted, &res.Completed}, {broker.StateDead, &res.Dead}} {
			n, err := c.jobs(ctx, q, st.state, cut)
			*st.n += n
			if err != nil {
				return res, fmt.Errorf("data.cleanup: remove %s jobs of queue %s: %w", st.state, q, err)
			}
		}
	}
	if c.cfg.ReportsDir != "" {
		if res.Reports, err = removeOlder(c.cfg.ReportsDir, cut); err != nil {
			return res, fmt.Errorf("data.cleanup: remove report files: %w", err)
		}
	}
	if c.cfg.Audit != nil && c.cfg.AuditRetention > 0 {
		if res.Audit, err = c.cfg.Audit.Trim(ctx, now.Add(-c.cfg.AuditRetention)); err != nil {
			return res, fmt.Errorf("data.cleanup: %w", err)
		}
	}
	return res, nil
}

// deletePage is how many jobs one commit removes.
const deletePage = 500

// jobs removes a queue's jobs in state that finished before cut, a page
// per commit, and returns how many it removed.
func (c *Cleanup) jobs(ctx context.Context, queue string, state broker.State, cut time.Time) (int, error) {
	removed := 0
	for {
		from, err := c.boundary(ctx, queue, state, cut)
		if err != nil {
			return removed, err
		}
		page, err := c.cfg.Broker.JobList(ctx, &broker.JobListParams{Queue: queue, State: state, Offset: from, Limit: deletePage})
		if err != nil {
			return removed, err
		}
		var ids []string
		for _, j := range page.Jobs {
			if j.FinishedAt.Before(cut) {
				ids = append(ids, j.ID)
			}
		}
		if len(ids) == 0 {
			return removed, nil
		}
		_, err = c.cm.Commit(ctx, &broker.CommitParams{Scope: queue, Delete: ids})
		switch {
		case errors.Is(err, broker.ErrConflict):
			continue // a job was retried meanwhile: list again
		case err != nil:
			return removed, err
		}
		removed += len(ids)
	}
}

// boundary returns the offset of the newest job in state that finished
// before cut: listings of finished states run newest first, so it
// bisects on FinishedAt instead of reading the jobs kept.
func (c *Cleanup) boundary(ctx context.Context, queue string, state broker.State, cut time.Time) (int, error) {
	stats, err := c.cfg.Broker.QueueStats(ctx, &broker.QueueStatsParams{Queue: queue})
	if err != nil {
		return 0, err
	}
	lo, hi := 0, int(stats.Completed)
	if state == broker.StateDead {
		hi = int(stats.Dead)
	}
	for lo < hi {
		mid := (lo + hi) / 2
		page, err := c.cfg.Broker.JobList(ctx, &broker.JobListParams{Queue: queue, State: state, Offset: mid, Limit: 1})
		if err != nil {
			return 0, err
		}
		if len(page.Jobs) == 0 || page.Jobs[0].FinishedAt.Before(cut) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// removeOlder removes the regular files under dir last modified before
// cut, then the directories that emptied, and returns how many files it
// removed. A missing dir holds nothing.
func removeOlder(dir string, cut time.Time) (int, error) {
	removed := 0
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case d.IsDir():
			if path != dir {
				dirs = append(dirs, path)
			}
			return nil
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().Before(cut) {
			if err := os.Remove(path); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i]) // fails, as wanted, unless it emptied
	}
	return removed, err
}
