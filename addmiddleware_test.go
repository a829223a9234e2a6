package worker_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/internal/testbroker"
)

// TestAddMiddleware: the Client's AddMiddleware sees every Add and AddMany
// (a tenant view's too, which keeps its scope) and what it sets in the
// specs' Headers is stored; the caller's specs are left as they were.
func TestAddMiddleware(t *testing.T) {
	b := testbroker.SQLite(t)
	var seen []string
	mark := func(next worker.AddFunc) worker.AddFunc {
		return func(ctx context.Context, queue string, specs []worker.JobSpec) ([]*worker.Job, error) {
			seen = append(seen, queue)
			for i := range specs {
				h := maps.Clone(specs[i].Headers)
				if h == nil {
					h = map[string]string{}
				}
				h["traceparent"] = "00-from-middleware"
				specs[i].Headers = h
			}
			return next(ctx, queue, specs)
		}
	}
	c, err := worker.NewClient(b, worker.ClientConfig{AddMiddleware: []worker.AddMiddleware{mark}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	one, err := c.Add(ctx, "q", worker.JobSpec{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	specs := []worker.JobSpec{{Type: "t", Headers: map[string]string{"origin": "api"}}, {Type: "t"}}
	many, err := c.AddMany(ctx, "q", specs)
	if err != nil {
		t.Fatal(err)
	}
	if specs[0].Headers["traceparent"] != "" || specs[1].Headers != nil {
		t.Errorf("AddMany changed the caller's specs: %v", specs)
	}
	tc, err := c.Tenant("acme")
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := tc.Add(ctx, "q", worker.JobSpec{Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range append([]*worker.Job{one, scoped}, many...) {
		stored, err := c.Get(ctx, "q", j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Headers["traceparent"] != "00-from-middleware" {
			t.Errorf("job %s stored headers %v, want the middleware's traceparent", j.ID, stored.Headers)
		}
	}
	if many[0].Headers["origin"] != "api" {
		t.Errorf("the caller's own header was lost: %v", many[0].Headers)
	}
	if scoped.TenantID != "acme" {
		t.Errorf("a tenant view's add through middleware stored tenant %q, want acme", scoped.TenantID)
	}
	if len(seen) != 3 {
		t.Errorf("the middleware saw %d adds, want 3", len(seen))
	}
}

// TestAddMiddlewareErrors: a nil middleware is refused by NewClient, and a
// middleware that loses the job of an Add is an error, not a nil job.
func TestAddMiddlewareErrors(t *testing.T) {
	b := testbroker.SQLite(t)
	if _, err := worker.NewClient(b, worker.ClientConfig{AddMiddleware: []worker.AddMiddleware{nil}}); err == nil ||
		!strings.Contains(err.Error(), "add middleware 0 is nil") {
		t.Errorf("NewClient with a nil middleware: %v, want an error naming it", err)
	}
	drop := func(worker.AddFunc) worker.AddFunc {
		return func(context.Context, string, []worker.JobSpec) ([]*worker.Job, error) { return nil, nil }
	}
	c, err := worker.NewClient(b, worker.ClientConfig{AddMiddleware: []worker.AddMiddleware{drop}})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := c.Add(context.Background(), "q", worker.JobSpec{Type: "t"}); err == nil || j != nil {
		t.Errorf("Add through a middleware that returns no job: %v, %v; want an error", j, err)
	}
}
