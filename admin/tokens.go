package admin

import (
	"net/http"
	"time"
)

// tokenRoutes registers the tokens routes. They need Config.Tokens; without
// it they answer 404.
func (s *Server) tokenRoutes() {
	s.handle("POST /api/v1/tokens", RoleAdmin, s.createToken)
	s.handle("GET /api/v1/tokens", RoleAdmin, s.listTokens)
	s.handle("DELETE /api/v1/tokens/{id}", RoleAdmin, s.revokeToken)
}

// tokenCreateRequest is the body of POST /api/v1/tokens.
type tokenCreateRequest struct {
	Name     string `json:"name"`
	Role     Role   `json:"role"`
	TenantID string `json:"tenantId"`
	// ExpiresAt (RFC 3339) or ExpiresIn (a Go duration, e.g. "720h")
	// sets the expiry; neither means never.
	ExpiresAt *time.Time `json:"expiresAt"`
	ExpiresIn string     `json:"expiresIn"`
}

// tokenCreated is the answer to POST /api/v1/tokens: the token, shown this
// once, and its description.
type tokenCreated struct {
	Token string `json:"token"`
	*TokenInfo
}

// errNoTokens answers the token routes of a server without a TokenStore.
var errNoTokens = Errorf(http.StatusNotFound, CodeNotFound, "", "this server keeps no token store")

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ts := s.cfg.Tokens
	if ts == nil {
		return errNoTokens
	}
	var req tokenCreateRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	sp := TokenSpec{Name: req.Name, Role: req.Role, TenantID: req.TenantID}
	switch {
	case req.ExpiresAt != nil && req.ExpiresIn != "":
		return Errorf(http.StatusBadRequest, CodeBadRequest, "expiresIn", "give expiresAt or expiresIn, not both")
	case req.ExpiresAt != nil:
		sp.ExpiresAt = *req.ExpiresAt
	case req.ExpiresIn != "":
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "expiresIn", "expiresIn %q must be a positive duration, e.g. 720h", req.ExpiresIn)
		}
		sp.ExpiresAt = s.cfg.Now().Add(d)
	}
	if err := mayGrant(p, &sp); err != nil {
		return err
	}
	token, info, err := ts.Create(r.Context(), sp)
	if err != nil {
		return err
	}
	s.log.Info("admin: token created", "by", p.TokenID, "id", info.ID, "name", info.Name, "role", info.Role, "tenant", info.TenantID)
	noteAudit(r.Context(), info.TenantID, map[string]any{"id": info.ID, "name": info.Name, "role": info.Role, "tenantId": info.TenantID})
	writeJSON(w, http.StatusCreated, tokenCreated{Token: token, TokenInfo: info})
	return nil
}

// mayGrant checks that p may make the token sp: a tenant-scoped admin
// makes tokens only for its own tenant (an empty tenant means its own),
// and nobody grants a role above its own. A cross-tenant token can thus
// only come from a cross-tenant admin.
func mayGrant(p *Principal, sp *TokenSpec) error {
	if !p.CrossTenant() {
		if sp.TenantID == "" {
			sp.TenantID = p.TenantID
		}
		if sp.TenantID != p.TenantID {
			return Errorf(http.StatusForbidden, CodeForbidden, "tenantId", "a token scoped to tenant %q may not make tokens for tenant %q", p.TenantID, sp.TenantID)
		}
	}
	if sp.Role.Valid() && !p.Role.Allows(sp.Role) {
		return Errorf(http.StatusForbidden, CodeForbidden, "role", "role %s may not grant role %s", p.Role, sp.Role)
	}
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ts := s.cfg.Tokens
	if ts == nil {
		return errNoTokens
	}
	list, err := ts.List(r.Context(), p.TenantID)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*TokenInfo{}
	}
	writeJSON(w, http.StatusOK, struct {
		Tokens []*TokenInfo `json:"tokens"`
	}{list})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p *Principal) error {
	ts := s.cfg.Tokens
	if ts == nil {
		return errNoTokens
	}
	id := r.PathValue("id")
	if err := ts.Revoke(r.Context(), id, p.TenantID); err != nil {
		return err
	}
	s.log.Info("admin: token revoked", "by", p.TokenID, "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
