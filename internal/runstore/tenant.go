package runstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aibos/worker/broker"
)

// tenantIndex names the index of a tenant's runs in a queue.
func tenantIndex(tenant string) string { return "tenant:" + tenant }

// TenantRuns returns the ids of one page of queue's runs of tenant,
// newest first, and how many runs of the tenant the queue holds. (A run
// stored before the tenant index existed is listed from its next change.)
func (s *Store) TenantRuns(ctx context.Context, queue, tenant string, offset, limit int) ([]string, int, error) {
	l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: queue, Kind: kindRun, Index: tenantIndex(tenant), Desc: true,
		Offset: offset, Limit: limit})
	if err != nil {
		return nil, 0, fmt.Errorf("list the runs of tenant %q in queue %q: %w", tenant, queue, err)
	}
	ids := make([]string, 0, len(l.Docs))
	for _, d := range l.Docs {
		ids = append(ids, d.Key)
	}
	return ids, l.Total, nil
}

// WorkflowRunPurge removes run id of queue whole, whatever its state: a
// running run is cancelled first (its open jobs cancelled, an active one
// losing its lease), then the run, its idempotency key, its index entries
// and its jobs are removed in one commit, as retention removes a finished
// run. A missing run is not an error.
func (s *Store) WorkflowRunPurge(ctx context.Context, queue, id string) error {
	return retry(ctx, "purge run "+id, func() error {
		r, err := s.load(ctx, queue, id)
		if errors.Is(err, broker.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.State == broker.WorkflowRunning {
			if _, err := s.WorkflowRunCancel(ctx, queue, id); err != nil && !errors.Is(err, broker.ErrWrongState) {
				return err
			}
			return broker.ErrConflict // read the cancelled run again
		}
		cp, err := s.removal(ctx, r)
		if err != nil {
			return err
		}
		if cp == nil {
			// A compensation or hook of the run is still unfinished: cancel
			// it, as purging means none of the tenant's work runs on.
			for _, jid := range runJobIDs(r) {
				if _, err := s.b.JobCancel(ctx, &broker.JobCancelParams{Queue: queue, ID: jid}); err != nil &&
					!errors.Is(err, broker.ErrNotFound) && !errors.Is(err, broker.ErrWrongState) {
					return fmt.Errorf("cancel job %s of run %s: %w", jid, id, err)
				}
			}
			return broker.ErrConflict
		}
		_, err = s.commit(ctx, cp)
		return err
	})
}

// runJobIDs lists every job a run has or may have.
func runJobIDs(r *runDoc) []string {
	var ids []string
	for _, st := range r.Steps {
		ids = append(ids, st.Job.ID)
		if st.Compensation != nil {
			ids = append(ids, st.Compensation.ID)
		}
	}
	for _, h := range []*broker.WorkflowJob{r.OnSuccess, r.OnFailure} {
		if h != nil {
			ids = append(ids, h.ID)
		}
	}
	return ids
}
