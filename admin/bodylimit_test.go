package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/admin/apitest"
	"github.com/aibos/worker/internal/testbroker"
)

const batchRoute = "POST /api/v1/queues/{queue}/jobs/batch"

// TestRouteBodyLimits: a route named in RouteMaxBodyBytes takes bodies up
// to its own limit while the others keep MaxBodyBytes; a body over either
// is a 413 too_large in the API's error shape naming the limit, and
// nothing is stored.
func TestRouteBodyLimits(t *testing.T) {
	srv := apitest.Start(t, admin.Config{Broker: testbroker.SQLite(t), MaxBodyBytes: 4096,
		RouteMaxBodyBytes: map[string]int64{batchRoute: 64 << 10}})
	job := func(n int) string { return `{"type":"x","data":"` + strings.Repeat("a", n) + `"}` }
	batch := func(jobs, n int) string {
		parts := make([]string, jobs)
		for i := range parts {
			parts[i] = job(n)
		}
		return `{"jobs":[` + strings.Join(parts, ",") + `]}`
	}
	var out admin.BatchResponse
	srv.Do(t, "POST", "/api/v1/queues/q/jobs/batch", apitest.Operator, batch(10, 1000)).Want(t, http.StatusCreated).JSON(t, &out)
	if len(out.Jobs) != 10 {
		t.Fatalf("a 10 kB batch under its route's 64 kB limit enqueued %d jobs, want 10", len(out.Jobs))
	}
	e := srv.Do(t, "POST", "/api/v1/queues/q/jobs/batch", apitest.Operator, batch(70, 1000)).WantError(t, http.StatusRequestEntityTooLarge, admin.CodeTooLarge)
	if !strings.Contains(e.Message, fmt.Sprint(64<<10)) {
		t.Errorf("413 message %q does not name the batch route's limit", e.Message)
	}
	e = srv.Do(t, "POST", "/api/v1/queues/q/jobs", apitest.Operator, job(5000)).WantError(t, http.StatusRequestEntityTooLarge, admin.CodeTooLarge)
	if !strings.Contains(e.Message, "4096") {
		t.Errorf("413 message %q does not name MaxBodyBytes", e.Message)
	}
	var page admin.JobPage
	srv.Do(t, "GET", "/api/v1/jobs?limit=100", apitest.Viewer, nil).Want(t, http.StatusOK).JSON(t, &page)
	if len(page.Jobs) != 10 {
		t.Fatalf("%d jobs stored, want the first batch's 10 alone", len(page.Jobs))
	}
}

// TestRouteBodyLimitsChecked: a limit for a pattern that is no route, or
// one not above zero, is an error of New.
func TestRouteBodyLimitsChecked(t *testing.T) {
	b := testbroker.SQLite(t)
	c, err := worker.NewClient(b, worker.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for limits, want := range map[string]map[string]int64{
		"which is no route": {"POST /api/v1/queues/{queue}/job": 1},
		"want above 0":      {batchRoute: 0},
	} {
		_, err := admin.New(admin.Config{Broker: b, Client: c, Auth: apitest.DefaultTokens(), RouteMaxBodyBytes: want})
		if err == nil || !strings.Contains(err.Error(), limits) {
			t.Errorf("new with %v: %v; want an error saying %q", want, err, limits)
		}
	}
}
