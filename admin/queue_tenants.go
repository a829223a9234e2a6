package admin

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
	"github.com/aibos/worker/tenant"
)

// StartRateWindow is the recent window QueueTenant.StartRate averages
// over.
const StartRateWindow = 5 * time.Minute

// queueTenantRoutes registers the per-tenant routes of a queue.
func (s *Server) queueTenantRoutes() {
	s.handle("GET /api/v1/queues/{queue}/tenants", RoleViewer, s.queueTenantList)
	s.handle("GET /api/v1/queues/{queue}/tenants/{tenant}", RoleViewer, s.queueTenant)
	s.handle("POST /api/v1/queues/{queue}/tenants/{tenant}/pause", RoleOperator, s.queueTenantPause(true))
	s.handle("POST /api/v1/queues/{queue}/tenants/{tenant}/resume", RoleOperator, s.queueTenantPause(false))
}

// QueueTenant is one tenant's share of a queue: its counts, whether its
// jobs are paused, its fair-scheduling weight and cap, and the rate limits
// that apply to it with how many jobs each lets start now.
type QueueTenant struct {
	Queue        string         `json:"queue"`
	Tenant       string         `json:"tenant"`
	Paused       bool           `json:"paused"`
	TenantPaused bool           `json:"tenantPaused"`
	Counts       map[string]int `json:"counts"`
	// OldestPendingAt is when the tenant's longest-waiting pending job
	// became due.
	OldestPendingAt *time.Time  `json:"oldestPendingAt,omitempty"`
	Fair            bool        `json:"fair"`
	Weight          int         `json:"weight"`
	MaxActive       int         `json:"maxActive"`
	Rates           []RateLimit `json:"rates"`
	// StartRate is how many of the tenant's jobs of the queue started per
	// second over the last StartRateWindow, from the series every worker
	// records (so up to their flush interval, 10s, behind).
	StartRate float64 `json:"startRate"`
}

// QueueTenantList is a page of a queue's tenants: the registered ones and
// any other whose jobs started within StartRateWindow, by id.
type QueueTenantList struct {
	Tenants []QueueTenant `json:"tenants"`
	// NextOffset is the offset of the next page; -1 when there is none.
	NextOffset int `json:"nextOffset"`
	Total      int `json:"total"`
}

// RateLimit is one rate limit of a queue and its state.
type RateLimit struct {
	Tenant    string `json:"tenant,omitempty"`
	Type      string `json:"type,omitempty"`
	Limit     int    `json:"limit"`
	PeriodMs  int64  `json:"periodMs"`
	Available int    `json:"available"`
}

// queueTenantParams reads the {queue} and {tenant} path values, and
// refuses a tenant-scoped token another tenant.
func queueTenantParams(r *http.Request, p *Principal) (queue, tenant string, err error) {
	if queue, err = queueParam(r); err != nil {
		return "", "", err
	}
	tenant = r.PathValue("tenant")
	if err := broker.ValidateTenantPause(queue, tenant); err != nil {
		return "", "", Errorf(http.StatusBadRequest, CodeBadRequest, "tenant", "%v", err)
	}
	if !p.CrossTenant() && tenant != p.TenantID {
		return "", "", Errorf(http.StatusForbidden, CodeForbidden, "tenant", "a token scoped to tenant %q may not act on tenant %q", p.TenantID, tenant)
	}
	return queue, tenant, nil
}

func (s *Server) queueTenant(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q, tn, err := queueTenantParams(r, p)
	if err != nil {
		return err
	}
	pol, rates, err := s.queueTenantContext(r.Context(), q)
	if err != nil {
		return err
	}
	out, err := s.queueTenantView(r.Context(), q, tn, pol, rates)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) queueTenantList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	q, err := queueParam(r)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 50, 1, 100)
	if err != nil {
		return err
	}
	pol, rates, err := s.queueTenantContext(r.Context(), q)
	if err != nil {
		return err
	}
	ids := []string{p.TenantID}
	if p.CrossTenant() {
		if ids, err = s.registeredTenantIDs(r.Context()); err != nil {
			return err
		}
		for tn := range rates {
			if tn != "" && !slices.Contains(ids, tn) {
				ids = append(ids, tn)
			}
		}
		slices.Sort(ids)
	}
	out := QueueTenantList{Tenants: []QueueTenant{}, NextOffset: -1, Total: len(ids)}
	for _, tn := range ids[min(offset, len(ids)):min(offset+limit, len(ids))] {
		v, err := s.queueTenantView(r.Context(), q, tn, pol, rates)
		if err != nil {
			return err
		}
		out.Tenants = append(out.Tenants, v)
	}
	if offset+limit < len(ids) {
		out.NextOffset = offset + limit
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// queueTenantContext reads what every tenant's view of queue q shares:
// its fair policy and the tenants' start rates.
func (s *Server) queueTenantContext(ctx context.Context, q string) (*broker.FairPolicy, map[string]float64, error) {
	pol, err := s.cfg.Client.FairPolicy(ctx, q)
	if err != nil {
		return nil, nil, storeErr(err)
	}
	rates, err := series.StartRates(ctx, s.cfg.Broker, q, StartRateWindow, s.cfg.Now())
	if err != nil {
		return nil, nil, storeErr(err)
	}
	return pol, rates, nil
}

// registeredTenantIDs returns the id of every registered tenant.
func (s *Server) registeredTenantIDs(ctx context.Context) ([]string, error) {
	reg, err := s.tenants()
	if err != nil {
		return nil, err
	}
	var ids []string
	for offset := 0; offset >= 0; {
		l, err := reg.List(ctx, tenant.ListParams{Offset: offset, Limit: 1000})
		if err != nil {
			return nil, tenantError(err)
		}
		for _, t := range l.Tenants {
			ids = append(ids, t.ID)
		}
		offset = l.NextOffset
	}
	return ids, nil
}

// queueTenantView is tenant tn's share of queue q.
func (s *Server) queueTenantView(ctx context.Context, q, tn string, pol *broker.FairPolicy, rates map[string]float64) (QueueTenant, error) {
	c, err := s.cfg.Client.Tenant(tn)
	if err != nil {
		return QueueTenant{}, Errorf(http.StatusBadRequest, CodeBadRequest, "tenant", "%v", err)
	}
	st, err := c.Stats(ctx, q)
	if err != nil {
		return QueueTenant{}, storeErr(err)
	}
	out := QueueTenant{Queue: q, Tenant: tn, Paused: st.Paused, TenantPaused: st.TenantPaused, Counts: map[string]int{},
		Fair: pol.Fair, Weight: pol.WeightOf(tn), MaxActive: pol.CapOf(tn), Rates: []RateLimit{}, StartRate: rates[tn]}
	for _, state := range broker.States {
		out.Counts[string(state)] = int(st.Count(state))
	}
	if !st.OldestPendingAt.IsZero() {
		out.OldestPendingAt = &st.OldestPendingAt
	}
	for _, rs := range st.Rates {
		out.Rates = append(out.Rates, RateLimit{Tenant: rs.Tenant, Type: rs.Type, Limit: rs.Rate.Limit,
			PeriodMs: rs.Rate.Period.Milliseconds(), Available: rs.Available})
	}
	return out, nil
}

func (s *Server) queueTenantPause(paused bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p *Principal) error {
		q, tn, err := queueTenantParams(r, p)
		if err != nil {
			return err
		}
		act := s.cfg.Client.PauseTenant
		if !paused {
			act = s.cfg.Client.ResumeTenant
		}
		if err := act(r.Context(), q, tn); err != nil {
			return storeErr(err)
		}
		noteAudit(r.Context(), tn, map[string]any{"tenantPaused": paused})
		writeJSON(w, http.StatusOK, map[string]any{"queue": q, "tenant": tn, "tenantPaused": paused})
		return nil
	}
}
