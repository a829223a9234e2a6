package admin

import (
	"errors"
	"net/http"

	worker "github.com/aibos/worker"
)

func (s *Server) keyRoutes() {
	s.handle("POST /api/v1/keys/rotate", RoleAdmin, s.keysRotate)
}

// RotateRequest is the body of POST /api/v1/keys/rotate.
type RotateRequest struct {
	Queues    []string `json:"queues,omitempty"`    // default: every queue
	BatchSize int      `json:"batchSize,omitempty"` // jobs per page, 0..1000 (0: 100)
	MaxJobs   int      `json:"maxJobs,omitempty"`   // jobs this request reads, 0..500 (0: 500)
}

// RotateResult is what one rotation request did (worker.RotateResult).
type RotateResult = worker.RotateResult

// maxRotateJobs bounds the jobs one request reads, so that it answers
// well within the request timeout; the caller repeats the request until
// Done, each continuing from the cursor the last one saved.
const maxRotateJobs = 500

// keysRotate re-seals stored jobs under the newest encryption key, up to
// maxJobs of them per request (cross-tenant admins only: it reads every
// tenant's jobs).
func (s *Server) keysRotate(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireCrossTenant(p, "rotate encryption keys"); err != nil {
		return err
	}
	var body RotateRequest
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.MaxJobs < 0 || body.MaxJobs > maxRotateJobs || body.BatchSize < 0 || body.BatchSize > 1000 {
		return Errorf(http.StatusUnprocessableEntity, CodeInvalid, "maxJobs", "maxJobs must be 0..%d (0 means %d) and batchSize 0..1000", maxRotateJobs, maxRotateJobs)
	}
	if body.MaxJobs == 0 {
		body.MaxJobs = maxRotateJobs
	}
	res, err := s.cfg.Client.RotateKeys(r.Context(), worker.RotateParams{Queues: body.Queues, BatchSize: body.BatchSize, MaxJobs: body.MaxJobs})
	if res != nil {
		noteAudit(r.Context(), "", map[string]any{"key": res.Key, "read": res.Read, "rewritten": res.Rewritten, "runs": res.Runs, "schedules": res.Schedules, "done": res.Done, "unreadable": len(res.Unreadable)})
	}
	if errors.Is(err, worker.ErrNoEncryptionKeys) {
		return Errorf(http.StatusConflict, CodeConflict, "", "the service has no encryption keys to rotate to")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
