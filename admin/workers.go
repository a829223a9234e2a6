package admin

import (
	"net/http"

	"github.com/aibos/worker/internal/workerreg"
)

// workerRoutes registers the workers route. Worker processes serve every
// tenant: their hosts, queues and load describe the whole deployment, not
// one tenant, so a tenant-scoped token gets 403 rather than a list it has
// no use for and that tells it how busy the others are.
func (s *Server) workerRoutes() {
	s.handle("GET /api/v1/workers", RoleViewer, s.workerList)
}

type workerListBody struct {
	Workers []*workerreg.Worker `json:"workers"`
}

func (s *Server) workerList(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireCrossTenant(p, "list worker processes (they serve every tenant)"); err != nil {
		return err
	}
	ws, err := workerreg.List(r.Context(), s.cfg.Broker)
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []*workerreg.Worker{}
	}
	writeJSON(w, http.StatusOK, workerListBody{Workers: ws})
	return nil
}
