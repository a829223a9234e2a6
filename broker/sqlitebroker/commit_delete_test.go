package sqlitebroker

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aibos/worker/broker"
)

// A job inserted with DeleteOnComplete, completed through Commit (as a
// workflow step is), is removed whole, as JobComplete removes it; it is not
// refused as a lost lease and retried.
func TestCommitCompletesDeleteOnCompleteJob(t *testing.T) {
	b, err := Open(filepath.Join(t.TempDir(), "w.db"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := b.JobInsert(ctx, &broker.JobInsertParams{ID: "j", Queue: "q", Type: "t", MaxAttempts: 1, DeleteOnComplete: true}); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.JobFetch(ctx, &broker.JobFetchParams{Queue: "q", Limit: 1, LeaseDuration: time.Minute, WorkerID: "w"})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("fetch: %v, %v", jobs, err)
	}
	lp := broker.JobLeaseParams{Queue: "q", ID: "j", Token: jobs[0].LeaseToken}
	stale := lp
	stale.Token--
	if _, err := b.Commit(ctx, &broker.CommitParams{Scope: "q", Complete: []*broker.JobCompleteParams{{JobLeaseParams: stale}}}); !errors.Is(err, broker.ErrLeaseLost) {
		t.Fatalf("commit with a stale token: %v, want ErrLeaseLost", err)
	}
	if _, err := b.Commit(ctx, &broker.CommitParams{Scope: "q", Complete: []*broker.JobCompleteParams{{JobLeaseParams: lp}}}); err != nil {
		t.Fatalf("commit completing a DeleteOnComplete job: %v", err)
	}
	if _, err := b.JobGet(ctx, &broker.JobGetParams{Queue: "q", ID: "j"}); !errors.Is(err, broker.ErrNotFound) {
		t.Fatalf("job after its completion: %v, want ErrNotFound (removed whole)", err)
	}
}
