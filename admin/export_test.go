package admin

import "net/http"

// Exported for package admin_test only.
var (
	IdempotencyDocKey = idempotencyDocKey
	IdempotencyKind   = idempotencyKind
)

// RouteActions is the table of the mutating routes' audit actions.
var RouteActions = routeActions

// HandleForTest registers a route as the API's own routes are, for a
// test that needs a handler no route has.
func (s *Server) HandleForTest(pattern string, need Role, h func(w http.ResponseWriter, r *http.Request, p *Principal) error) {
	s.handle(pattern, need, h)
}
