package metrics

import "sync"

// tenantLabels bounds the tenant_id values of the job counters
// (Config.TenantLabelLimit): a tenant is admitted to a value of its own
// while fewer than limit are, and keeps it; the rest share OtherTenants.
type tenantLabels struct {
	limit    int
	mu       sync.Mutex
	admitted map[string]struct{}
}

// newTenantLabels returns the bound for limit, or nil when limit turns the
// label off.
func newTenantLabels(limit int) *tenantLabels {
	if limit <= 0 {
		return nil
	}
	return &tenantLabels{limit: limit, admitted: map[string]struct{}{}}
}

// value returns the tenant_id label value of tenant's attempts.
func (l *tenantLabels) value(tenant string) string {
	if tenant == "" || tenant == OtherTenants {
		return OtherTenants
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.admitted[tenant]; ok {
		return tenant
	}
	if len(l.admitted) < l.limit {
		l.admitted[tenant] = struct{}{}
		return tenant
	}
	return OtherTenants
}
