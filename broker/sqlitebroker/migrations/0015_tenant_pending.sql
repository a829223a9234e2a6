-- 0015: the tenant index of pending jobs holds pending jobs only.
-- jobs_tenant indexed a tenant's jobs in every state, so each lease and
-- each completion moved the job's entry within it (a delete and an insert,
-- each on a page of the tenant's own range). With the jobs of many tenants
-- served in turn (a fair queue), every job fetched and completed wrote
-- pages of jobs_tenant no other job of its transaction shared: 3.6 of the
-- 9.7 pages written per job to the WAL with 100 tenants. A tenant's counts
-- by state read the partial index of each state instead (jobs_tenant_due,
-- jobs_tenant_lease, jobs_tenant_finished), as 0014 did for the queue's.
DROP INDEX jobs_tenant;
CREATE INDEX jobs_tenant_pending ON jobs (queue, tenant_id, priority, seq)
    WHERE state = 'pending' AND tenant_id <> '';
