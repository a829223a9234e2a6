package tenant

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/aibos/worker/broker"
)

// FairPolicy returns the policy that gives queue's tenants the shares the
// registry holds: fairness on, each registered tenant's Weight, its
// MaxConcurrency as its cap in the queue and its RatePerSecond as its rate
// limit (rateOf). Tenants at weight 1 with no cap and no rate are left out (that is what the policy gives a tenant it does not name).
// Store it with worker.Client.SetFairPolicy or broker.FairBroker; the
// service does so for its fair queues at start and whenever the registry
// changes.
func (r *Registry) FairPolicy(ctx context.Context, queue string) (*broker.FairPolicy, error) {
	p := &broker.FairPolicy{Queue: queue, Fair: true, Tenants: map[string]broker.TenantShare{}}
	for off := 0; off >= 0; {
		page, err := r.List(ctx, ListParams{Offset: off, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("fair policy of queue %q: %w", queue, err)
		}
		for _, t := range page.Tenants {
			if t.Limits.Weight > 1 || t.Limits.MaxConcurrency > 0 || t.Limits.RatePerSecond > 0 {
				p.Tenants[t.ID] = broker.TenantShare{Weight: t.Limits.Weight, MaxActive: t.Limits.MaxConcurrency,
					Rate: rateOf(t.Limits.RatePerSecond)}
			}
		}
		off = page.NextOffset
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("fair policy of queue %q: %w", queue, err)
	}
	return p, nil
}

// rateOf turns a rate per second into a broker.Rate: the nearest whole
// number of jobs (at least 1) per the period that gives that rate, so 2.5
// per second is 3 per 1.2 s (a burst of 3). 0 means no limit.
func rateOf(perSecond float64) broker.Rate {
	if perSecond <= 0 {
		return broker.Rate{}
	}
	n := max(1, int(math.Round(perSecond)))
	period := time.Duration(float64(n) / perSecond * float64(time.Second))
	return broker.Rate{Limit: n, Period: min(max(period, broker.MinRatePeriod), broker.MaxRatePeriod)}
}
