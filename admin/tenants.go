package admin

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/tenant"
)

// tenantRoutes registers the tenants routes. A tenant-scoped token sees
// and (as admin) updates only its own tenant; another tenant is 404, as
// another tenant's job is. Creating and purging tenants are cross-tenant
// admin actions.
func (s *Server) tenantRoutes() {
	s.handle("GET /api/v1/tenants", RoleViewer, s.tenantList)
	s.handle("GET /api/v1/tenants/{id}", RoleViewer, s.tenantGet)
	s.handle("POST /api/v1/tenants", RoleAdmin, s.tenantCreate)
	s.handle("PUT /api/v1/tenants/{id}", RoleAdmin, s.tenantUpdate)
	s.handle("POST /api/v1/tenants/{id}/purge", RoleAdmin, s.tenantPurge)
}

// tenantBody is a tenant as a request gives it.
type tenantBody struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	TimeZone string        `json:"timeZone"`
	Currency string        `json:"currency"`
	Limits   tenant.Limits `json:"limits"`
}

func (b *tenantBody) tenant() *tenant.Tenant {
	return &tenant.Tenant{ID: b.ID, Name: b.Name, TimeZone: b.TimeZone, Currency: b.Currency, Limits: b.Limits}
}

type tenantListBody struct {
	Tenants    []*tenant.Tenant `json:"tenants"`
	NextOffset int              `json:"nextOffset"`
	Total      int              `json:"total"`
}

func (s *Server) tenants() (*tenant.Registry, error) { return tenant.New(s.cfg.Broker) }

// tenantError maps the registry's errors to the API's.
func tenantError(err error) error {
	var inv *tenant.InvalidError
	switch {
	case errors.As(err, &inv):
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, inv.Field, "%s: %s", inv.Field, inv.Reason)
	case errors.Is(err, tenant.ErrNotFound):
		return Errorf(http.StatusNotFound, CodeNotFound, "id", "%v", err)
	case errors.Is(err, tenant.ErrExists):
		return Errorf(http.StatusConflict, CodeConflict, "id", "%v", err)
	}
	return err
}

// requireCrossTenant refuses a tenant-scoped token what only a
// cross-tenant one may do.
func requireCrossTenant(p *Principal, what string) error {
	if !p.CrossTenant() {
		return Errorf(http.StatusForbidden, CodeForbidden, "", "a token scoped to one tenant may not %s", what)
	}
	return nil
}

// sees reports whether p may see tenant id; for a tenant-scoped token,
// another tenant does not exist.
func sees(p *Principal, id string) error {
	if !p.CrossTenant() && p.TenantID != id {
		return Errorf(http.StatusNotFound, CodeNotFound, "id", "get tenant %q: %v", id, tenant.ErrNotFound)
	}
	return nil
}

// queryInt reads an optional integer query parameter.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, Errorf(http.StatusBadRequest, CodeBadRequest, name, "%s must be an integer in %d..%d, not %q", name, lo, hi, v)
	}
	return n, nil
}

func (s *Server) tenantList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	offset, err := queryInt(r, "offset", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	limit, err := queryInt(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	reg, err := s.tenants()
	if err != nil {
		return err
	}
	if !p.CrossTenant() {
		// The query itself takes the scope: the one tenant is read, never
		// the registry filtered.
		out := tenantListBody{Tenants: []*tenant.Tenant{}, NextOffset: -1}
		t, err := reg.Get(r.Context(), p.TenantID)
		var inv *tenant.InvalidError
		switch {
		case err == nil:
			if offset == 0 {
				out.Tenants = append(out.Tenants, t)
			}
			out.Total = 1
		case !errors.Is(err, tenant.ErrNotFound) && !errors.As(err, &inv):
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	l, err := reg.List(r.Context(), tenant.ListParams{Offset: offset, Limit: limit})
	if err != nil {
		return tenantError(err)
	}
	writeJSON(w, http.StatusOK, tenantListBody{Tenants: l.Tenants, NextOffset: l.NextOffset, Total: l.Total})
	return nil
}

func (s *Server) tenantGet(w http.ResponseWriter, r *http.Request, p *Principal) error {
	id := r.PathValue("id")
	if err := sees(p, id); err != nil {
		return err
	}
	reg, err := s.tenants()
	if err != nil {
		return err
	}
	t, err := reg.Get(r.Context(), id)
	var inv *tenant.InvalidError
	if errors.As(err, &inv) {
		// No tenant can have an invalid id: it does not exist.
		return Errorf(http.StatusNotFound, CodeNotFound, "id", "get tenant %q: %v", id, tenant.ErrNotFound)
	}
	if err != nil {
		return tenantError(err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) tenantCreate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireCrossTenant(p, "create tenants"); err != nil {
		return err
	}
	var body tenantBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	reg, err := s.tenants()
	if err != nil {
		return err
	}
	t, err := reg.Create(r.Context(), body.tenant())
	if err != nil {
		return tenantError(err)
	}
	s.log.Info("admin: tenant created", "tenant", t.ID, "token_id", p.TokenID)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

// tenantUpdateBody is a PUT's body: limits left out are kept.
type tenantUpdateBody struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	TimeZone string         `json:"timeZone"`
	Currency string         `json:"currency"`
	Limits   *tenant.Limits `json:"limits"`
}

// tenantUpdate replaces a tenant's name, time zone and currency, and its
// limits when given. A tenant-scoped admin may not change its own
// tenant's limits: they are its share of workers that serve every tenant.
func (s *Server) tenantUpdate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	id := r.PathValue("id")
	if err := sees(p, id); err != nil {
		return err
	}
	var body tenantUpdateBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.ID != "" && body.ID != id {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "id", "the body's id %q is not the path's %q (a tenant's id cannot change)", body.ID, id)
	}
	reg, err := s.tenants()
	if err != nil {
		return err
	}
	t, err := reg.Modify(r.Context(), id, func(cur *tenant.Tenant) error {
		cur.Name, cur.TimeZone, cur.Currency = body.Name, body.TimeZone, body.Currency
		if body.Limits == nil {
			return nil
		}
		want := *body.Limits
		if err := want.Normalize(); err != nil {
			return err
		}
		if !p.CrossTenant() && want != cur.Limits {
			return Errorf(http.StatusForbidden, CodeForbidden, "limits", "a token scoped to one tenant may not change its limits (leave limits out to keep them)")
		}
		cur.Limits = want
		return nil
	})
	if err != nil {
		return tenantError(err)
	}
	s.log.Info("admin: tenant updated", "tenant", t.ID, "token_id", p.TokenID)
	writeJSON(w, http.StatusOK, t)
	return nil
}

type purgeBody struct {
	// DryRun is required, so that no request removes a tenant's data by
	// leaving it out.
	DryRun *bool `json:"dryRun"`
}

func (s *Server) tenantPurge(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireCrossTenant(p, "purge tenants"); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == "all" || len(id) > broker.MaxKeyLen || strings.ContainsFunc(id, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "id", `%q is not a tenant id that jobs can carry ("all" means every tenant in a system job and is never purged)`, id)
	}
	var body purgeBody
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.DryRun == nil {
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "dryRun", "dryRun is required: true counts what would be removed, false removes it")
	}
	start := time.Now()
	res, err := tenant.Purge(r.Context(), s.cfg.Broker, id, *body.DryRun)
	if err != nil {
		return tenantError(err)
	}
	if !res.DryRun {
		jobs := 0
		for _, n := range res.Jobs {
			jobs += n
		}
		// The audit trail (issue 16) records this too; until then, one line.
		s.log.Info("admin: tenant purged", "tenant", id, "token_id", p.TokenID, "jobs", jobs,
			"schedules", len(res.Schedules), "took", time.Since(start))
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
