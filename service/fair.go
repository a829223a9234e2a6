package service

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/tenant"
)

// fairSyncEvery is how often the service copies the tenants registry's
// weights and caps into its fair queues' policies.
const fairSyncEvery = 10 * time.Second

// syncFairness keeps the policy of each fair queue equal to what the
// tenants registry says (tenant.Registry.FairPolicy): at once, then every
// fairSyncEvery, writing only what changed, so that a tenant's new weight or
// cap applies within that time on every worker. It returns when ctx ends.
func (s *Service) syncFairness(ctx context.Context) {
	fb, ok := s.store.b.(broker.FairBroker)
	if !ok {
		return
	}
	reg, err := tenant.New(s.store.b)
	if err != nil {
		s.log.Error("fair queues: open tenants registry", "err", err)
		return
	}
	last := map[string]*broker.FairPolicy{}
	t := time.NewTicker(fairSyncEvery)
	defer t.Stop()
	for {
		for _, q := range s.cfg.Queues {
			if !q.Fair {
				continue
			}
			p, err := reg.FairPolicy(ctx, q.Name)
			if err == nil && !samePolicy(last[q.Name], p) {
				if err = fb.QueueFairSet(ctx, p); err == nil {
					last[q.Name] = p
				}
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("fair queues: apply tenant weights and caps", "queue", q.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func samePolicy(a, b *broker.FairPolicy) bool {
	return a != nil && b != nil && a.Fair == b.Fair && a.MaxActive == b.MaxActive && maps.Equal(a.Tenants, b.Tenants)
}

// metricsTenantsMax bounds the registered tenants the metrics rank at a
// scrape: each costs one read per queue.
const metricsTenantsMax = 1000

// registeredTenants returns the ids of the tenants registry, the
// candidates of the metrics' top tenants (WORKER_METRICS_TENANT_TOP).
func (s *Service) registeredTenants(ctx context.Context) ([]string, error) {
	reg, err := tenant.New(s.store.b)
	if err != nil {
		return nil, err
	}
	l, err := reg.List(ctx, tenant.ListParams{Limit: metricsTenantsMax})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(l.Tenants))
	for i, t := range l.Tenants {
		ids[i] = t.ID
	}
	return ids, nil
}
