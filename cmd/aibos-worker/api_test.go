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

// TestExitCodeOf pins the exit code of each error code the API answers
// with, and of a code this binary does not know.
func TestExitCodeOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		code   string
		status int
		want   int
	}{
		{admin.CodeBadRequest, 400, 2}, {admin.CodeInvalid, 422, 2}, {admin.CodeTooLarge, 413, 2},
		{admin.CodeIdempotency, 422, 2}, {admin.CodeNotFound, 404, 4}, {admin.CodeUnauthenticated, 401, 5},
		{admin.CodeForbidden, 403, 5}, {admin.CodeConflict, 409, 6}, {admin.CodeUnavailable, 503, 7},
		{admin.CodeTimeout, 503, 7}, {admin.CodeTooMany, 429, 7}, {admin.CodeQueueFull, 429, 7},
		{admin.CodeInternal, 500, 1},
		{"gone_fishing", 404, 4}, {"gone_fishing", 418, 2}, {"gone_fishing", 502, 1},
	}
	for _, c := range cases {
		if got := exitCodeOf(&admin.Error{Code: c.code, Status: c.status}); got != c.want {
			t.Errorf("exit code of %s (%d) = %d, want %d", c.code, c.status, got, c.want)
		}
	}
}
