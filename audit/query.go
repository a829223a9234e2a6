package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
)

// Filter selects entries. Zero fields select everything.
type Filter struct {
	// Tenant selects the entries of one tenant: whose token was scoped to
	// it or whose target belongs to it. It reads that tenant's index.
	Tenant string
	// Actor matches the token's id or name.
	Actor string
	// Action matches the action, or a prefix of it ending before a dot:
	// "job" matches "job.retry".
	Action string
	// Since and Until bound the entries' time (Since inclusive, Until
	// exclusive).
	Since, Until time.Time
	// Before, when above 0, starts the listing below that entry's number:
	// the cursor of the previous page.
	Before int64
}

func (f *Filter) match(e *Entry) bool {
	switch {
	case f.Actor != "" && f.Actor != e.TokenID && f.Actor != e.TokenName:
		return false
	case f.Action != "" && e.Action != f.Action && !strings.HasPrefix(e.Action, f.Action+"."):
		return false
	case !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	}
	return true
}

// Page is one page of entries, newest first.
type Page struct {
	Entries []*Entry
	// Next is the cursor of the next page (Filter.Before), 0 at the end.
	Next int64
}

// MaxList bounds List's limit.
const MaxList = 1000

// maxScan bounds how many entries one List reads, so that a filter that
// matches rarely answers with a short page and a cursor rather than
// reading the whole trail in one request.
const maxScan = 5000

// List returns up to limit entries matching f, newest first (limit 0
// means 100). Entries are not verified: Verify does that.
func List(ctx context.Context, b broker.Broker, f Filter, limit int) (*Page, error) {
	cm, err := committer(b)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	if limit < 0 || limit > MaxList {
		return nil, fmt.Errorf("audit: list: limit %d is not 0..%d", limit, MaxList)
	}
	if limit == 0 {
		limit = 100
	}
	index := indexAll
	if f.Tenant != "" {
		index = tenantIndex(f.Tenant)
	}
	out := &Page{}
	max, scanned := f.Before-1, 0
	for {
		if max == 0 {
			return out, nil // below entry 1: the end
		}
		p := &broker.DocListParams{Scope: Scope, Kind: entryKind, Index: index, Desc: true, Limit: min(limit+1, 500)}
		if max > 0 {
			p.Min, p.Max = 1, max
		}
		page, err := cm.DocList(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		for _, d := range page.Docs {
			var e Entry
			if err := json.Unmarshal(d.Body, &e); err != nil {
				return nil, fmt.Errorf("audit: list: entry %s: %w", d.Key, err)
			}
			// Times never go back along the chain, so nothing older
			// than Since follows.
			if !f.Since.IsZero() && e.Time.Before(f.Since) {
				return out, nil
			}
			if len(out.Entries) == limit {
				out.Next = e.Seq + 1
				return out, nil
			}
			scanned++
			max = e.Seq - 1
			if f.match(&e) {
				out.Entries = append(out.Entries, &e)
			}
			if scanned >= maxScan && max > 0 {
				out.Next = max + 1
				return out, nil
			}
		}
		if len(page.Docs) < p.Limit {
			return out, nil
		}
	}
}
