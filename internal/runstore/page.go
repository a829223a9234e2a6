package runstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/aibos/worker/broker"
)

// runIndex names the index of a workflow's runs, optionally of one tenant
// (scoped) and in one state. A tenant's runs have indexes of their own so
// that a tenant-scoped list reads only them.
func runIndex(workflow, tenant string, scoped bool, state broker.WorkflowState) string {
	index := "wf:" + workflow
	if scoped {
		// The tenant's length keeps "a:b" + state apart from "a" + ":b...".
		index += ":tenant:" + strconv.Itoa(len(tenant)) + ":" + tenant
	}
	if state != "" {
		index += ":" + string(state)
	}
	return index
}

// PageParams selects one page of a workflow's runs, newest first.
type PageParams struct {
	Queue    string
	Workflow string
	State    broker.WorkflowState // "" for every state
	// Tenant, when Scoped, lists only the runs of that tenant, through its
	// own index.
	Tenant string
	Scoped bool
	// Cursor is the Next of the previous page; "" for the first.
	Cursor string
	Limit  int // 1..1000; 0 means 100
}

// Page is one page of runs.
type Page struct {
	Runs []*broker.WorkflowRun
	// Next is the cursor of the next page, "" after the last.
	Next string
}

// ErrBadCursor: a cursor this package did not make.
var ErrBadCursor = fmt.Errorf("%w: the cursor is not one a previous page returned", broker.ErrInvalidJob)

// cursor is a position in an index ordered by creation time, newest
// first: the runs created at or before Max, skipping the first Skip of
// those created exactly at Max (already shown). Unlike an offset, it does
// not shift when new runs are created between pages.
type cursor struct {
	Max  int64
	Skip int
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Max, 10) + "." + strconv.Itoa(c.Skip)))
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	maxS, skipS, ok := strings.Cut(string(b), ".")
	m, err1 := strconv.ParseInt(maxS, 10, 64)
	k, err2 := strconv.Atoi(skipS)
	if !ok || err1 != nil || err2 != nil || m <= 0 || k < 0 {
		return cursor{}, ErrBadCursor
	}
	return cursor{Max: m, Skip: k}, nil
}

// WorkflowRunPage returns one page of a workflow's runs, newest first,
// with each step's state.
func (s *Store) WorkflowRunPage(ctx context.Context, p *PageParams) (*Page, error) {
	lp := &broker.WorkflowRunListParams{Queue: p.Queue, Workflow: p.Workflow, State: p.State, Limit: p.Limit}
	if err := lp.Validate(); err != nil {
		return nil, err
	}
	cur, err := parseCursor(p.Cursor)
	if err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kindRun, Desc: true,
		Index: runIndex(p.Workflow, p.Tenant, p.Scoped, p.State), Max: cur.Max, Offset: cur.Skip, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	more := len(l.Docs) > limit
	if more {
		l.Docs = l.Docs[:limit]
	}
	page := &Page{}
	for _, d := range l.Docs {
		r, err := decode(d)
		if err != nil {
			return nil, err
		}
		if err := s.live(ctx, r); err != nil {
			return nil, err
		}
		page.Runs = append(page.Runs, &r.WorkflowRun)
	}
	if more {
		page.Next = next(cur, page.Runs).String()
	}
	return page, nil
}

// next is the cursor after runs, a page read from cur.
func next(cur cursor, runs []*broker.WorkflowRun) cursor {
	last := runs[len(runs)-1].CreatedAt.UnixMilli()
	n := cursor{Max: last}
	for i := len(runs) - 1; i >= 0 && runs[i].CreatedAt.UnixMilli() == last; i-- {
		n.Skip++
	}
	if last == cur.Max && n.Skip == len(runs) {
		n.Skip += cur.Skip // the whole page shares the previous page's time
	}
	return n
}
