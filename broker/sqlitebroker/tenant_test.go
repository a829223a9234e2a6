package sqlitebroker

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/aibos/worker/broker"
)

// TestTenantQueriesUseIndex checks with EXPLAIN QUERY PLAN that a tenant's
// listing of each state, and its counts, are searches of a tenant index in
// the listing's order: no scan of the queue's jobs and no sort.
func TestTenantQueriesUseIndex(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	plan := func(q string, args ...any) string { t.Helper(); return queryPlan(t, b, q, args...) }
	wantIndex := map[broker.State]string{
		broker.StatePending: "jobs_tenant_pending ", broker.StateScheduled: "jobs_tenant_due ", broker.StateActive: "jobs_tenant_lease ",
		broker.StateCompleted: "jobs_tenant_finished ", broker.StateDead: "jobs_tenant_finished ",
		broker.StateCancelled: "jobs_tenant_finished ", broker.StateExpired: "jobs_tenant_finished ",
	}
	for _, st := range broker.States {
		for _, typ := range []string{"", "invoice.processing"} {
			for _, after := range []string{"", "5 7"} {
				q, args, err := listQuery(&broker.JobListParams{Queue: "q", State: st, TenantID: "t", Type: typ, After: after})
				if err != nil {
					t.Fatal(err)
				}
				got := plan(q, append(args, 10, 0)...)
				if !strings.Contains(got, "SEARCH jobs USING INDEX "+wantIndex[st]) || strings.Contains(got, "TEMP B-TREE") {
					t.Errorf("tenant listing of %s jobs (type %q, after %q): plan %q; want a search of index %s with no sort", st, typ, after, got, strings.TrimSpace(wantIndex[st]))
				}
			}
		}
	}
	count, oldest, _, args := statsQueries(&broker.QueueStatsParams{Queue: "q", TenantID: "t"})
	for _, c := range []struct {
		q    string
		args []any
		want string
	}{
		{count, args, "jobs_tenant_pending jobs_tenant_due jobs_tenant_lease jobs_tenant_finished"},
		{oldest, args, "jobs_tenant_pending"},
		{sqlTenantActive, args, "jobs_tenant_lease"},
	} {
		got := plan(c.q, c.args...)
		for _, idx := range strings.Fields(c.want) {
			if !strings.Contains(got, "INDEX "+idx+" (queue=? AND tenant_id=?") {
				t.Errorf("tenant query %q: plan %q; want a search of index %s", c.q, got, idx)
			}
		}
		if strings.Contains(got, "SCAN jobs") {
			t.Errorf("tenant query %q: plan %q scans the jobs", c.q, got)
		}
	}
	// The recent completions are a range of the finish-time indexes, not a
	// count of every completed job.
	for scope, index := range map[string]string{"t": "jobs_tenant_finished", "": "jobs_finished"} {
		_, _, recent, args := statsQueries(&broker.QueueStatsParams{Queue: "q", TenantID: scope})
		want := "INDEX " + index + " (queue=? AND "
		if got := plan(recent, append(args, 1)...); !strings.Contains(got, want) || !strings.Contains(got, "finished_at>?") {
			t.Errorf("recent completions query of tenant %q: plan %q; want a range of index %s on finished_at", scope, got, index)
		}
	}
}

// queryPlan returns the steps of q's EXPLAIN QUERY PLAN on b, joined by
// "; ".
func queryPlan(t *testing.T, b *Broker, q string, args ...any) string {
	t.Helper()
	rows, err := b.read.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatalf("explain %s: %v", q, err)
		}
		steps = append(steps, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	return strings.Join(steps, "; ")
}

// TestQueueQueriesUseIndex checks with EXPLAIN QUERY PLAN that a queue's
// fetch, listings of each state, counts by state and length count search
// the partial index of each state (migration 0014): none scans the queue's
// jobs, and no listing sorts.
func TestQueueQueriesUseIndex(t *testing.T) {
	t.Parallel()
	b := openInternal(t)
	wantIndex := map[broker.State]string{
		broker.StatePending: "jobs_pending ", broker.StateScheduled: "jobs_due ", broker.StateActive: "jobs_lease ",
		broker.StateCompleted: "jobs_finished ", broker.StateDead: "jobs_finished ",
		broker.StateCancelled: "jobs_finished ", broker.StateExpired: "jobs_finished ",
	}
	for _, st := range broker.States {
		for _, after := range []string{"", "5 7"} {
			q, args, err := listQuery(&broker.JobListParams{Queue: "q", State: st, After: after})
			if err != nil {
				t.Fatal(err)
			}
			got := queryPlan(t, b, q, append(args, 10, 0)...)
			if !strings.Contains(got, "SEARCH jobs USING INDEX "+wantIndex[st]) || strings.Contains(got, "TEMP B-TREE") {
				t.Errorf("listing of %s jobs (after %q): plan %q; want a search of index %s with no sort", st, after, got, strings.TrimSpace(wantIndex[st]))
			}
		}
	}
	count, oldest, recent, args := statsQueries(&broker.QueueStatsParams{Queue: "q"})
	for _, c := range []struct {
		q    string
		args []any
		want string
	}{
		{count, args, "jobs_pending jobs_due jobs_lease jobs_finished"},
		{oldest, args, "jobs_pending"},
		{recent, append(args, 0), "jobs_finished"},
		{sqlWaiting, args, "jobs_due jobs_pending"},
		{sqlWaitingUpTo, append(args, 10), "jobs_due jobs_pending"},
		{sqlLease, []any{0, 0, 0, "w", "q", 10}, "jobs_pending"},
	} {
		got := queryPlan(t, b, c.q, c.args...)
		for _, idx := range strings.Fields(c.want) {
			if !strings.Contains(got, "INDEX "+idx+" ") {
				t.Errorf("query %q: plan %q; want a search of index %s", c.q, got, idx)
			}
		}
		if strings.Contains(got, "SCAN jobs") {
			t.Errorf("query %q: plan %q scans the jobs", c.q, got)
		}
	}
}

// openInternal opens a store in a fresh temporary directory and closes it
// at the end of the test.
func openInternal(t *testing.T) *Broker {
	t.Helper()
	b, err := Open(filepath.Join(t.TempDir(), "jobs.db"), Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
