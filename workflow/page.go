package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/runstore"
)

// ErrUnknownWorkflow: no workflow of that name is registered.
var ErrUnknownWorkflow = errors.New("workflow is not registered")

// ErrBadCursor: a cursor that no page returned. It wraps
// broker.ErrInvalidJob.
var ErrBadCursor = runstore.ErrBadCursor

// PageParams selects one page of a workflow's runs, newest first.
type PageParams struct {
	Workflow string // required
	State    State  // optional: "" lists every state
	// Tenant, when Scoped, lists only that tenant's runs, read through the
	// tenant's own index (never by filtering every run). "all" is a tenant
	// name like any other; runs of no tenant are in no scope, so Scoped
	// with Tenant "" lists nothing.
	Tenant string
	Scoped bool
	// Cursor is Page.Next of the previous page; "" for the first page.
	Cursor string
	Limit  int // 1..1000; 0 means 100
}

// Page is one page of runs, newest first.
type Page struct {
	Runs []*Run
	// Next is the cursor of the next page, "" after the last. Runs created
	// after the first page do not shift the pages that follow it.
	Next string
}

// Page lists one page of a workflow's runs, newest first, each with its
// step states. Runs stored before tenant indexes existed show in a scoped
// page only after their next transition.
func (e *Engine) Page(ctx context.Context, p PageParams) (*Page, error) {
	pg, err := e.store.WorkflowRunPage(ctx, &runstore.PageParams{Queue: e.cfg.Queue, Workflow: p.Workflow, State: p.State,
		Tenant: p.Tenant, Scoped: p.Scoped, Cursor: p.Cursor, Limit: p.Limit})
	if err != nil {
		return nil, fmt.Errorf("workflow: list runs of %q: %w", p.Workflow, err)
	}
	e.showAll(pg.Runs)
	return &Page{Runs: pg.Runs, Next: pg.Next}, nil
}

// GetScoped is Get for a caller that sees only tenant's runs when scoped:
// a run of another tenant wraps broker.ErrNotFound, as an absent one does.
func (e *Engine) GetScoped(ctx context.Context, runID, tenant string, scoped bool) (*Run, error) {
	run, err := e.Get(ctx, runID)
	if err != nil {
		return nil, err
	}
	if scoped && run.TenantID != tenant {
		return nil, fmt.Errorf("workflow: get run %s: %w", runID, broker.ErrNotFound)
	}
	return run, nil
}

// Names returns the names of the registered workflows, sorted. It is safe
// for concurrent use with Register.
func (e *Engine) Names() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	names := make([]string, 0, len(e.workflows))
	for n := range e.workflows {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Registered reports whether a workflow named name is registered.
func (e *Engine) Registered(name string) bool {
	_, ok := e.workflow(name)
	return ok
}
