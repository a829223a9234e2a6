package admin

import (
	"net/http"
	"time"

	"github.com/aibos/worker/broker"
)

// queueTenantRoutes registers the per-tenant routes of a queue.
func (s *Server) queueTenantRoutes() {
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
	c, err := s.cfg.Client.Tenant(tn)
	if err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "tenant", "%v", err)
	}
	st, err := c.Stats(r.Context(), q)
	if err != nil {
		return storeErr(err)
	}
	pol, err := s.cfg.Client.FairPolicy(r.Context(), q)
	if err != nil {
		return storeErr(err)
	}
	out := QueueTenant{Queue: q, Tenant: tn, Paused: st.Paused, TenantPaused: st.TenantPaused, Counts: map[string]int{},
		Fair: pol.Fair, Weight: pol.WeightOf(tn), MaxActive: pol.CapOf(tn), Rates: []RateLimit{}}
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
	writeJSON(w, http.StatusOK, out)
	return nil
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
