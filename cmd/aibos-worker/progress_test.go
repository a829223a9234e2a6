package main

import (
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
)

// TestBulkProgressLine checks the progress line of a bulk action: none
// for an action that ends before the threshold, one for an action that
// ran past it.
func TestBulkProgressLine(t *testing.T) {
	t.Parallel()
	req := admin.BulkRequest{Action: "retry", Filter: admin.JobFilter{Queue: "invoices"}}
	run := func(after time.Duration) string {
		var out strings.Builder
		progress := make(chan admin.BulkResponse, 1)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			showProgress(req, after, progress, stop, &out)
		}()
		progress <- admin.BulkResponse{Done: 7, Failed: 1}
		close(stop)
		<-done
		return out.String()
	}
	if got := run(time.Hour); got != "" {
		t.Errorf("an action quicker than the threshold printed %q, want nothing", got)
	}
	got := run(0)
	if n := strings.Count(got, "\n"); n != 1 || !strings.HasPrefix(got, "retrying dead jobs in queue invoices: ") {
		t.Errorf("an action past the threshold printed %q, want one progress line", got)
	}
}
