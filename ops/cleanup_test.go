package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/audit"
	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/testbroker"
	"github.com/aibos/worker/ops"
	"github.com/aibos/worker/retry"
)

var auditKey = []byte("0123456789abcdef0123456789abcdef")

// finish inserts n jobs into queue and takes each to state (completed or
// dead), or leaves it pending, cancelled or scheduled; it returns their
// ids.
func finish(t *testing.T, b broker.Broker, queue, prefix string, n int, state broker.State) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		p := &broker.JobInsertParams{ID: id, Queue: queue, Type: "t", MaxAttempts: 1}
		if state == broker.StateScheduled {
			p.RunAt = time.Now().Add(time.Hour)
		}
		if _, err := b.JobInsert(ctx, p); err != nil {
			t.Fatalf("insert %s: %v", id, err)
		}
		ids = append(ids, id)
		switch state {
		case broker.StateCancelled:
			if _, err := b.JobCancel(ctx, &broker.JobCancelParams{Queue: queue, ID: id}); err != nil {
				t.Fatal(err)
			}
		case broker.StateCompleted, broker.StateDead:
			jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: queue, Limit: 1, LeaseDuration: time.Minute, WorkerID: "w"})
			if err != nil || len(jobs) != 1 || jobs[0].ID != id {
				t.Fatalf("fetch %s: %v, %v", id, jobs, err)
			}
			lease := broker.JobLeaseParams{Queue: queue, ID: id, Token: jobs[0].LeaseToken}
			if state == broker.StateCompleted {
				errs, err := b.JobComplete(ctx, []*broker.JobCompleteParams{{JobLeaseParams: lease}})
				if err != nil || errs[0] != nil {
					t.Fatalf("complete %s: %v %v", id, err, errs)
				}
			} else if _, err := b.JobFail(ctx, &broker.JobFailParams{JobLeaseParams: lease, Error: "boom"}); err != nil {
				t.Fatalf("fail %s: %v", id, err)
			}
		}
	}
	return ids
}

// after waits until the broker's clock reads later than t, and returns it.
func after(t *testing.T, cm broker.Committer, at time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		now, err := cm.Now(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if now.After(at.Add(5 * time.Millisecond)) {
			return now
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("the broker clock did not pass %v within 10s", at)
	return time.Time{}
}

// listed returns the ids of queue's jobs in state.
func listed(t *testing.T, b broker.Broker, queue string, state broker.State) []string {
	t.Helper()
	res, err := b.JobList(context.Background(), &broker.JobListParams{Queue: queue, State: state, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range res.Jobs {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestCleanupRemovesExactlyWhatIsPastRetention finishes old jobs, records
// old audit entries and writes old report files, then newer ones of each,
// and runs the cleanup with a clock injected so that the cut falls between
// them: the old finished jobs, audit entries and files go, nothing else.
func TestCleanupRemovesExactlyWhatIsPastRetention(t *testing.T) {
	testbroker.Each(t, func(t *testing.T, b broker.Broker) {
		ctx := context.Background()
		cm := b.(broker.Committer)
		trail, err := audit.New(b, audit.Config{Key: auditKey})
		if err != nil {
			t.Fatal(err)
		}
		record := func(n int, what string) {
			for i := range n {
				if _, err := trail.Record(ctx, &audit.Entry{Action: "job.retry", Outcome: audit.OK, Target: fmt.Sprintf("%s-%d", what, i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		reports := filepath.Join(t.TempDir(), "reports")
		file := func(name string, mtime time.Time) {
			p := filepath.Join(reports, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("report"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}

		// Old: before the cut.
		oldDone := finish(t, b, "reports", "old-done", 6, broker.StateCompleted)
		oldDead := finish(t, b, "reports", "old-dead", 3, broker.StateDead)
		oldDone2 := finish(t, b, "invoices", "old-done", 2, broker.StateCompleted)
		oldPending := finish(t, b, "invoices", "old-pending", 2, broker.StatePending)
		oldCancelled := finish(t, b, "invoices", "old-cancelled", 1, broker.StateCancelled)
		record(4, "old")
		last, _ := cm.Now(ctx)
		cut := after(t, cm, last)
		after(t, cm, cut)
		// New: after the cut.
		newDone := finish(t, b, "reports", "new-done", 4, broker.StateCompleted)
		newDead := finish(t, b, "reports", "new-dead", 2, broker.StateDead)
		newScheduled := finish(t, b, "invoices", "new-scheduled", 1, broker.StateScheduled)
		record(3, "new")
		file("tenant-a/2026-01-01/trial-balance.csv", cut.Add(-time.Hour))
		file("tenant-a/2026-01-01/trial-balance.pdf", cut.Add(-time.Minute))
		file("tenant-b/old.csv", cut.Add(-48*time.Hour))
		file("tenant-a/2026-03-01/trial-balance.csv", cut.Add(time.Minute))

		before := func(q string) *broker.QueueStats {
			s, err := b.QueueStats(ctx, &broker.QueueStatsParams{Queue: q})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if s := before("reports"); s.Completed != 10 || s.Dead != 5 {
			t.Fatalf("before: reports holds %d completed and %d dead, want 10 and 5", s.Completed, s.Dead)
		}

		const retention = 90 * 24 * time.Hour
		clean, err := ops.NewCleanup(ops.CleanupConfig{Broker: b, Audit: trail, AuditRetention: retention, ReportsDir: reports,
			Now: func(context.Context) (time.Time, error) { return cut.Add(retention), nil }})
		if err != nil {
			t.Fatal(err)
		}
		res, err := clean.Run(ctx, retention)
		if err != nil {
			t.Fatal(err)
		}
		want := ops.CleanupResult{Completed: len(oldDone) + len(oldDone2), Dead: len(oldDead), Audit: 4, Reports: 3}
		if *res != want {
			t.Errorf("cleanup removed %+v, want %+v", *res, want)
		}
		for _, c := range []struct {
			queue string
			state broker.State
			want  []string
		}{
			{"reports", broker.StateCompleted, newDone},
			{"reports", broker.StateDead, newDead},
			{"invoices", broker.StateCompleted, nil},
			{"invoices", broker.StatePending, oldPending},
			{"invoices", broker.StateCancelled, oldCancelled},
			{"invoices", broker.StateScheduled, newScheduled},
		} {
			if got := listed(t, b, c.queue, c.state); !slices.Equal(got, c.want) {
				t.Errorf("after: %s %s jobs are %v, want %v", c.queue, c.state, got, c.want)
			}
		}
		rep, err := audit.Verify(ctx, b, auditKey, audit.VerifyOptions{})
		if err != nil {
			t.Fatalf("the audit trail does not verify after the cleanup: %v", err)
		}
		if rep.Entries != 3 || rep.Trimmed != 4 {
			t.Errorf("audit after the cleanup: %d entries, %d trimmed; want 3 and 4", rep.Entries, rep.Trimmed)
		}
		var left []string
		_ = filepath.WalkDir(reports, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(reports, p)
				left = append(left, filepath.ToSlash(rel))
			}
			return err
		})
		if !slices.Equal(left, []string{"tenant-a/2026-03-01/trial-balance.csv"}) {
			t.Errorf("report files left: %v", left)
		}
		if _, err := os.Stat(filepath.Join(reports, "tenant-b")); !os.IsNotExist(err) {
			t.Errorf("the emptied report directory stayed: %v", err)
		}
		// Run again at the same clock: nothing more is past retention.
		if res, err := clean.Run(ctx, retention); err != nil || *res != (ops.CleanupResult{}) {
			t.Errorf("second cleanup: %+v, %v; want nothing removed", res, err)
		}
	})
}

func TestCleanupRefusesBadInput(t *testing.T) {
	b := testbroker.SQLite(t)
	if _, err := ops.NewCleanup(ops.CleanupConfig{}); err == nil {
		t.Error("NewCleanup without a broker succeeded")
	}
	c, err := ops.NewCleanup(ops.CleanupConfig{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), 0); err == nil {
		t.Error("cleanup with no retention succeeded")
	}
	for _, j := range []*worker.Job{
		{ID: "1", Data: json.RawMessage(`{"retentionDays": 0}`)},
		{ID: "2", Data: json.RawMessage(`{"retentionDays": "90"}`)},
		{ID: "3", Data: json.RawMessage(`{"retentionDays": 90}`), TenantID: "tenant-a"},
	} {
		err := c.Process(context.Background(), j)
		if err == nil || !retry.IsNoRetry(err) {
			t.Errorf("cleanup job %s (%s, tenant %q): %v, want a failure without retry", j.ID, j.Data, j.TenantID, err)
		}
	}
}
