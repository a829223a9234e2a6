-- 0009: priority 1 is the most urgent (as the seed means it): the fetch
-- order becomes lower priority numbers first, FIFO among equals, and so
-- does a tenant's pending listing. Rows written before keep their numbers
-- and are read with the new meaning.

DROP INDEX jobs_fetch;
CREATE INDEX jobs_fetch ON jobs (queue, state, priority, seq);
DROP INDEX jobs_tenant;
CREATE INDEX jobs_tenant ON jobs (queue, tenant_id, state, priority, seq)
    WHERE tenant_id <> '';

-- A job inserted with DeleteOnComplete is removed whole when it completes.
ALTER TABLE jobs ADD COLUMN delete_on_complete INTEGER NOT NULL DEFAULT 0;
