package admin

import (
	"net/http"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/series"
)

// seriesRoutes registers the series route. The series are per queue over
// every tenant (one document per queue and minute; per-tenant series would
// multiply the store's writes by the tenants), so a tenant-scoped token
// gets 403: the totals include other tenants' jobs.
func (s *Server) seriesRoutes() {
	s.handle("GET /api/v1/series", RoleViewer, s.seriesGet)
}

// seriesMaxRange bounds one request's range: the store keeps 24 hours.
const seriesMaxRange = 24 * time.Hour

type seriesBody struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// BucketBoundsMs are the latency histogram's bucket bounds.
	BucketBoundsMs []int64       `json:"bucketBoundsMs"`
	Series         []queueSeries `json:"series"`
}

type queueSeries struct {
	Queue   string         `json:"queue"`
	Minutes []seriesMinute `json:"minutes"`
}

type seriesMinute struct {
	Start     time.Time     `json:"start"`
	Completed int64         `json:"completed"`
	Failed    int64         `json:"failed"`
	Dead      int64         `json:"dead"`
	Latency   seriesLatency `json:"latency"`
}

type seriesLatency struct {
	Count int64 `json:"count"`
	SumMs int64 `json:"sumMs"`
	// P50Ms and P95Ms are bucket upper bounds; -1 is beyond the last one.
	P50Ms   int64   `json:"p50Ms"`
	P95Ms   int64   `json:"p95Ms"`
	Buckets []int64 `json:"buckets"`
}

// timeParam reads an optional RFC 3339 query parameter.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, Errorf(http.StatusBadRequest, CodeBadRequest, name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", name, v)
	}
	return t, nil
}

func (s *Server) seriesGet(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if err := requireCrossTenant(p, "read the series (they count every tenant's jobs)"); err != nil {
		return err
	}
	to, err := timeParam(r, "to", s.cfg.Now())
	if err != nil {
		return err
	}
	from, err := timeParam(r, "from", to.Add(-time.Hour))
	if err != nil {
		return err
	}
	if from.After(to) || to.Sub(from) > seriesMaxRange {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "from", "from must be before to and at most %v earlier (from %s, to %s)",
			seriesMaxRange, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	queues := []string{r.URL.Query().Get("queue")}
	if queues[0] == "" {
		if queues, err = series.Queues(r.Context(), s.cfg.Broker); err != nil {
			return err
		}
	} else if err := broker.ValidateQueueName(queues[0]); err != nil {
		return Errorf(http.StatusBadRequest, CodeBadRequest, "queue", "%v", err)
	}
	out := seriesBody{From: from.UTC(), To: to.UTC(), BucketBoundsMs: series.Bounds, Series: []queueSeries{}}
	for _, q := range queues {
		ms, err := series.Read(r.Context(), s.cfg.Broker, series.ReadParams{Queue: q, From: from, To: to})
		if err != nil {
			return err
		}
		qs := queueSeries{Queue: q, Minutes: make([]seriesMinute, 0, len(ms))}
		for _, m := range ms {
			qs.Minutes = append(qs.Minutes, seriesMinute{Start: m.Start, Completed: m.Completed, Failed: m.Failed, Dead: m.Dead,
				Latency: seriesLatency{Count: m.Latency.Count, SumMs: m.Latency.SumMs, P50Ms: m.Latency.Quantile(0.5),
					P95Ms: m.Latency.Quantile(0.95), Buckets: m.Latency.Buckets}})
		}
		out.Series = append(out.Series, qs)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
