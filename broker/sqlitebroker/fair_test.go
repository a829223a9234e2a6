package sqlitebroker

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestFairFetchUsesIndex checks with EXPLAIN QUERY PLAN that a fair fetch
// reads its jobs in fair order from the jobs_fair index: a range of the
// queue's pending tagged jobs, already in (priority, tag, seq) order, with
// no scan of the queue's jobs and no sort of them.
func TestFairFetchUsesIndex(t *testing.T) {
	t.Parallel()
	b, err := Open(filepath.Join(t.TempDir(), "jobs.db"), Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"candidates": {sqlFairCandidates, []any{"q", 10}},
		"lease":      {sqlLeaseFair, []any{1, 2, 3, "w", "q", 10}},
	} {
		got := queryPlan(t, b, q.sql, q.args...)
		if !strings.Contains(got, "INDEX jobs_fair (queue=?") || strings.Contains(got, "TEMP B-TREE") {
			t.Errorf("fair fetch's %s: plan %q; want a search of index jobs_fair with no sort", name, got)
		}
	}
}
