package admin

import (
	"errors"
	"net/http"
	"slices"

	"github.com/aibos/worker/broker"
)

// BulkRequest is the body of POST /api/v1/jobs/bulk: retry or delete
// every job Filter selects, or with DryRun only count them.
type BulkRequest struct {
	Action string    `json:"action"`
	Filter JobFilter `json:"filter"`
	DryRun bool      `json:"dryRun,omitempty"`
}

// BulkResponse reports a bulk action.
type BulkResponse struct {
	Action string `json:"action"`
	DryRun bool   `json:"dryRun"`
	// Matched counts the jobs the filter selected (at most MaxBulk).
	Matched int `json:"matched"`
	// Done counts the jobs the action applied to; Failed the others (a
	// job that changed state meanwhile).
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// Truncated reports that more than MaxBulk jobs matched: call again.
	Truncated bool `json:"truncated,omitempty"`
	// Errors describe the first failures.
	Errors []BulkError `json:"errors,omitempty"`
}

// BulkError is one job a bulk action failed on.
type BulkError struct {
	ID      string `json:"id"`
	Queue   string `json:"queue"`
	Message string `json:"message"`
}

// MaxBulk bounds the jobs one bulk request acts on, so that a request
// ends within its timeout.
const MaxBulk = 10000

// bulkStates are the states each action applies to, the default when the
// filter names none.
var bulkStates = map[string][]broker.State{
	"retry":  {broker.StateDead, broker.StateCancelled, broker.StateExpired},
	"delete": {broker.StateCompleted, broker.StateDead, broker.StateCancelled, broker.StateExpired},
}

// check validates a bulk request: 422 naming the field.
func (b *BulkRequest) check() ([]broker.State, error) {
	states, ok := bulkStates[b.Action]
	if !ok {
		return nil, Errorf(http.StatusUnprocessableEntity, CodeInvalid, "action", "action must be retry or delete, not %q", b.Action)
	}
	if b.Filter.State != "" {
		st := broker.State(b.Filter.State)
		if !slices.Contains(states, st) {
			return nil, Errorf(http.StatusUnprocessableEntity, CodeInvalid, "filter.state", "%s applies to jobs that are %v, not %q", b.Action, states, b.Filter.State)
		}
		states = []broker.State{st}
	}
	if b.Filter.Queue != "" {
		if err := broker.ValidateQueueName(b.Filter.Queue); err != nil {
			return nil, Errorf(http.StatusUnprocessableEntity, CodeInvalid, "filter.queue", "%v", err)
		}
	}
	if !b.Filter.From.IsZero() && !b.Filter.To.IsZero() && !b.Filter.From.Before(b.Filter.To) {
		return nil, Errorf(http.StatusUnprocessableEntity, CodeInvalid, "filter.to", "to must be after from")
	}
	return states, nil
}

func (s *Server) bulkJobs(w http.ResponseWriter, r *http.Request, p *Principal) error {
	var req BulkRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	states, err := req.check()
	if err != nil {
		return err
	}
	tenant, err := tenantScope(p, req.Filter.Tenant, "filter.tenant")
	if err != nil {
		return err
	}
	c, err := s.client(p)
	if err != nil {
		return err
	}
	// Collect first, act after: acting while paging would shift the
	// offsets of the pages still to read.
	var jobs []*broker.Job
	out := &BulkResponse{Action: req.Action, DryRun: req.DryRun}
	for _, st := range states {
		f := req.Filter
		f.State = string(st)
		var after *cursor
		for {
			var next *cursor
			err := s.walkJobs(r.Context(), c, f, tenant, after, maxLimit, func(j *broker.Job) {
				jobs = append(jobs, j)
			}, func(c *cursor) { next = c })
			if err != nil {
				return err
			}
			if len(jobs) > MaxBulk {
				jobs, out.Truncated = jobs[:MaxBulk], true
				break
			}
			if next == nil {
				break
			}
			after = next
		}
		if out.Truncated {
			break
		}
	}
	out.Matched = len(jobs)
	defer auditBulk(r.Context(), &req, tenant, jobs, out)
	if req.DryRun {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	for _, j := range jobs {
		var err error
		if req.Action == "retry" {
			_, err = c.Retry(r.Context(), j.Queue, j.ID)
		} else {
			err = c.Delete(r.Context(), j.Queue, j.ID)
		}
		if err != nil {
			if r.Context().Err() != nil || !isJobError(err) {
				return storeErr(err)
			}
			out.Failed++
			if len(out.Errors) < 10 {
				out.Errors = append(out.Errors, BulkError{ID: j.ID, Queue: j.Queue, Message: err.Error()})
			}
			continue
		}
		out.Done++
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// isJobError reports whether err concerns the job alone (it changed state
// or went away meanwhile), so a bulk action goes on with the others.
func isJobError(err error) bool {
	return errors.Is(err, broker.ErrWrongState) || errors.Is(err, broker.ErrNotFound) || errors.Is(err, broker.ErrDuplicate)
}
