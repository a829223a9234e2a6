-- 0008: per-tenant indexes. A listing or count scoped to a tenant reads
-- only that tenant's index entries, in the order the listing returns them,
-- so a page costs its offset and size within the tenant's jobs, never a
-- scan of the queue. The indexes are partial (tenant_id <> ''): jobs with
-- no tenant, the common case on the hot paths, are in none of them. Queries
-- repeat the partial conditions literally so that SQLite may use them.

-- Pending listing (fetch order) and per-tenant counts by state.
CREATE INDEX jobs_tenant ON jobs (queue, tenant_id, state, priority DESC, seq)
    WHERE tenant_id <> '';
-- Scheduled listing, by due time.
CREATE INDEX jobs_tenant_due ON jobs (queue, tenant_id, run_at, seq)
    WHERE state = 'scheduled' AND tenant_id <> '';
-- Active listing, by lease expiry.
CREATE INDEX jobs_tenant_lease ON jobs (queue, tenant_id, lease_until, seq)
    WHERE state = 'active' AND tenant_id <> '';
-- Finished listings, newest first.
CREATE INDEX jobs_tenant_finished ON jobs (queue, tenant_id, state, finished_at DESC, seq DESC)
    WHERE finished_at IS NOT NULL AND tenant_id <> '';
