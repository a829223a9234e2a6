package admin

import (
	"net/http"
	"strings"
)

// authenticate reads the request's bearer token and asks the
// Authenticator who it is: 401 without a token or with one it refuses.
func (s *Server) authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, Errorf(http.StatusUnauthorized, CodeUnauthenticated, "Authorization", "missing bearer token (Authorization: Bearer <token>)")
	}
	p, err := s.cfg.Auth.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// authorize checks that p's role allows what needs role need: 403 if not.
func (s *Server) authorize(_ *http.Request, p *Principal, need Role) error {
	if !p.Role.Allows(need) {
		return Errorf(http.StatusForbidden, CodeForbidden, "", "role %s may not do this (needs %s)", p.Role, need)
	}
	return nil
}
