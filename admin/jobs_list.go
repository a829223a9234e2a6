package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// JobFilter selects jobs: by queue, state, type, tenant and creation time
// (From inclusive, To exclusive). Empty fields select everything.
type JobFilter struct {
	Queue  string    `json:"queue,omitempty"`
	State  string    `json:"state,omitempty"`
	Type   string    `json:"type,omitempty"`
	Tenant string    `json:"tenant,omitempty"`
	From   time.Time `json:"from,omitzero"`
	To     time.Time `json:"to,omitzero"`
}

// JobPage is one page of GET /api/v1/jobs.
type JobPage struct {
	Jobs []*Job `json:"jobs"`
	// NextCursor fetches the next page; absent on the last.
	NextCursor string `json:"nextCursor,omitempty"`
}

// cursor is where a listing resumes: the store lists one queue and state
// at a time, so a listing over several walks them in order (queues sorted,
// states in life-cycle order) and the cursor names the pair and the
// offset within it.
type cursor struct {
	Queue  string `json:"q"`
	State  string `json:"s"`
	Offset int    `json:"o"`
}

const (
	defaultLimit = 100
	maxLimit     = 1000
	// maxListCalls bounds the store reads of one page, so a time filter
	// that matches little cannot make one request scan everything: the
	// page comes back short with a cursor.
	maxListCalls = 50
)

// listQuery is a parsed GET /api/v1/jobs query.
type listQuery struct {
	filter JobFilter
	after  *cursor
	limit  int
}

// parseListQuery reads and checks the query of GET /api/v1/jobs: 400
// naming the parameter for anything malformed or unknown.
func parseListQuery(q url.Values) (*listQuery, error) {
	bad := func(f, format string, args ...any) error {
		return Errorf(http.StatusBadRequest, CodeBadRequest, f, format, args...)
	}
	known := []string{"queue", "state", "type", "tenant", "from", "to", "cursor", "limit"}
	for k, vs := range q {
		if k == "" {
			return nil, bad("", "a query parameter has an empty name")
		}
		if !slices.Contains(known, k) {
			return nil, bad(k, "unknown query parameter %q", k)
		}
		if len(vs) > 1 {
			return nil, bad(k, "query parameter %q is given %d times", k, len(vs))
		}
	}
	lq := &listQuery{limit: defaultLimit}
	f := &lq.filter
	f.Queue, f.State, f.Type, f.Tenant = q.Get("queue"), q.Get("state"), q.Get("type"), q.Get("tenant")
	if f.Queue != "" {
		if err := broker.ValidateQueueName(f.Queue); err != nil {
			return nil, bad("queue", "%v", err)
		}
	}
	if f.State != "" && !broker.State(f.State).Valid() {
		return nil, bad("state", "unknown state %q (want one of %v)", f.State, broker.States)
	}
	if len(f.Type) > maxText || len(f.Tenant) > maxText {
		return nil, bad("type", "type and tenant have at most %d bytes", maxText)
	}
	for _, t := range []struct {
		name string
		into *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.name); v != "" {
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, bad(t.name, "%s must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z", t.name)
			}
			*t.into = tm
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, bad("to", "to must be after from")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return nil, bad("limit", "limit must be 1..%d", maxLimit)
		}
		lq.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return nil, bad("cursor", "the cursor is not one this API gave")
		}
		lq.after = c
	}
	return lq, nil
}

func decodeCursor(v string) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if broker.ValidateQueueName(c.Queue) != nil || !broker.State(c.State).Valid() || c.Offset < 0 {
		return nil, errBadCursor
	}
	return &c, nil
}

var errBadCursor = Errorf(http.StatusBadRequest, CodeBadRequest, "cursor", "bad cursor")

func (c *cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tenantScope returns the tenant a filter's tenant asks for under p: a
// tenant-scoped token may name only its own tenant (403 otherwise), so a
// filter is never a way around the scope.
func tenantScope(p *Principal, tenant, field string) (string, error) {
	if p.CrossTenant() {
		return tenant, nil
	}
	if tenant != "" && tenant != p.TenantID {
		return "", Errorf(http.StatusForbidden, CodeForbidden, field, "this token may see only tenant %q", p.TenantID)
	}
	return p.TenantID, nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p *Principal) error {
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	c, err := s.client(p)
	if err != nil {
		return err
	}
	tenant, err := tenantScope(p, lq.filter.Tenant, "tenant")
	if err != nil {
		return err
	}
	page := &JobPage{Jobs: []*Job{}}
	err = s.walkJobs(r.Context(), c, lq.filter, tenant, lq.after, lq.limit, func(j *broker.Job) {
		page.Jobs = append(page.Jobs, jobOf(j).redactFor(p))
	}, func(next *cursor) {
		if next != nil {
			page.NextCursor = next.encode()
		}
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// walkJobs calls each for up to limit jobs matching f (read with tenant
// as the store's scope), starting after from, then done with the cursor
// of what follows (nil when nothing does).
func (s *Server) walkJobs(ctx context.Context, c *worker.Client, f JobFilter, tenant string, from *cursor, limit int, each func(*broker.Job), done func(*cursor)) error {
	queues := []string{f.Queue}
	if f.Queue == "" {
		all, err := c.Queues(ctx)
		if err != nil {
			return storeErr(err)
		}
		queues = all
	}
	states := broker.States
	if f.State != "" {
		states = []broker.State{broker.State(f.State)}
	}
	n, calls := 0, 0
	for _, q := range queues {
		if from != nil && q < from.Queue {
			continue
		}
		for _, st := range states {
			off := 0
			if from != nil && q == from.Queue {
				if slices.Index(broker.States, st) < slices.Index(broker.States, broker.State(from.State)) {
					continue
				}
				if string(st) == from.State {
					off = from.Offset
				}
			}
			for off >= 0 {
				if n == limit || calls == maxListCalls {
					done(&cursor{Queue: q, State: string(st), Offset: off})
					return nil
				}
				calls++
				res, err := c.List(ctx, worker.ListParams{Queue: q, State: st, TenantID: tenant, Type: f.Type, Offset: off, Limit: limit - n})
				if err != nil {
					return storeErr(err)
				}
				for i, j := range res.Jobs {
					if n == limit {
						done(&cursor{Queue: q, State: string(st), Offset: off + i})
						return nil
					}
					if (f.From.IsZero() || !j.CreatedAt.Before(f.From)) && (f.To.IsZero() || j.CreatedAt.Before(f.To)) {
						each(j)
						n++
					}
				}
				off = res.NextOffset
			}
		}
	}
	done(nil)
	return nil
}
