package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aibos/worker/broker"
)

// OtherTenants is the tenant_id under which <ns>_queue_tenant_waiting_jobs
// sums the waiting jobs of every tenant outside the top Config.TopTenants
// of a queue, and of jobs with no tenant.
const OtherTenants = "other"

// waiting is the jobs of st that wait to run: pending and scheduled.
func waiting(st *broker.QueueStats) int64 {
	return st.Count(broker.StatePending) + st.Count(broker.StateScheduled)
}

// collectTopTenants sends, for each queue of stats, the waiting jobs of
// the Config.TopTenants candidate tenants with the most (ties by id), and
// the queue's remaining waiting jobs under OtherTenants: at most
// TopTenants+1 series per queue, however many tenants there are.
func (w *WorkerMetrics) collectTopTenants(ctx context.Context, ch chan<- prometheus.Metric, stats []*broker.QueueStats) error {
	if w.cfg.TopTenants <= 0 || w.cfg.Tenants == nil || len(stats) == 0 {
		return nil
	}
	tenants, err := w.cfg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	type depth struct {
		tenant string
		n      int64
	}
	for _, st := range stats {
		depths := make([]depth, 0, len(tenants))
		for _, tn := range tenants {
			if tn == "" || tn == OtherTenants {
				continue
			}
			ts, err := w.cfg.Broker.QueueStats(ctx, &broker.QueueStatsParams{Queue: st.Queue, TenantID: tn})
			if err != nil {
				return fmt.Errorf("stats of tenant %q in queue %q: %w", tn, st.Queue, err)
			}
			if n := waiting(ts); n > 0 {
				depths = append(depths, depth{tn, n})
			}
		}
		slices.SortFunc(depths, func(a, b depth) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.tenant, b.tenant)) })
		rest := waiting(st)
		for _, d := range depths[:min(len(depths), w.cfg.TopTenants)] {
			ch <- prometheus.MustNewConstMetric(w.tenantWaiting, prometheus.GaugeValue, float64(d.n), st.Queue, d.tenant)
			rest -= d.n
		}
		// The queue's count and the tenants' are separate reads; jobs
		// that moved between them must not make "other" negative.
		ch <- prometheus.MustNewConstMetric(w.tenantWaiting, prometheus.GaugeValue, float64(max(rest, 0)), st.Queue, OtherTenants)
	}
	return nil
}
