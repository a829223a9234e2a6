-- 0011: a unique key is held per (queue, tenant, key), no longer per
-- (queue, key): jobs of different tenants never block each other (nor does a
-- tenant learn the id of another tenant's job from a duplicate error), and
-- jobs with no tenant (tenant_id '') share a namespace of their own. Rows
-- that held a key keep holding it: the new index is wider, so every row the
-- old one accepted fits it.
DROP INDEX jobs_unique;
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, tenant_id, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'pending', 'active');
