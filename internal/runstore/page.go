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

// cursor is a position in an index ordered by creation time then run id,
// both descending: the runs created before Max, or at Max with an id below
// Key (the last run shown). Unlike an offset, it does not shift when runs
// are created between pages, even within the same millisecond.
type cursor struct {
	Max int64
	Key string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Max, 10) + "." + c.Key))
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, ErrBadCursor
	}
	maxS, key, ok := strings.Cut(string(b), ".")
	m, err := strconv.ParseInt(maxS, 10, 64)
	if !ok || err != nil || m <= 0 || key == "" {
		return cursor{}, ErrBadCursor
	}
	return cursor{Max: m, Key: key}, nil
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
	docs, err := s.after(ctx, p, cur, limit+1)
	if err != nil {
		return nil, err
	}
	more := len(docs) > limit
	if more {
		docs = docs[:limit]
	}
	page := &Page{}
	for _, r := range docs {
		if err := s.live(ctx, r); err != nil {
			return nil, err
		}
		page.Runs = append(page.Runs, &r.WorkflowRun)
	}
	if more {
		last := page.Runs[len(page.Runs)-1]
		page.Next = cursor{Max: last.CreatedAt.UnixMilli(), Key: last.ID}.String()
	}
	return page, nil
}

// after reads up to n runs of p's index past cur. The index can only
// bound scores, so the runs at cur.Max already shown (ids from cur.Key up)
// are read and dropped: few, as they share one millisecond.
func (s *Store) after(ctx context.Context, p *PageParams, cur cursor, n int) ([]*runDoc, error) {
	var out []*runDoc
	for offset := 0; ; {
		l, err := s.c.DocList(ctx, &broker.DocListParams{Scope: p.Queue, Kind: kindRun, Desc: true,
			Index: runIndex(p.Workflow, p.Tenant, p.Scoped, p.State), Max: cur.Max, Offset: offset, Limit: n})
		if err != nil {
			return nil, err
		}
		for _, d := range l.Docs {
			r, err := decode(d)
			if err != nil {
				return nil, err
			}
			if cur.Key != "" && r.CreatedAt.UnixMilli() == cur.Max && r.ID >= cur.Key {
				continue
			}
			if out = append(out, r); len(out) == n {
				return out, nil
			}
		}
		if len(l.Docs) < n {
			return out, nil
		}
		offset += len(l.Docs)
	}
}
