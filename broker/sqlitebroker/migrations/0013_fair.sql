-- 0013: fair scheduling between the tenants of a queue, and per-tenant
-- caps (broker/fair.go has the model; fair.go here the upkeep).
--
-- queues.fair: tenants of one priority are served in turn by weight.
-- queues.max_active: the default per-tenant cap (0: none); capped: some
-- tenant of the queue is capped (by it or by fair_tenants), so that fetches
-- of queues without caps skip the check. rate_limit and rate_period_us: the
-- default tenant rate limit (0: none); rated: some rate limit is set.
ALTER TABLE queues ADD COLUMN fair INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN max_active INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN capped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rate_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rate_period_us INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN rated INTEGER NOT NULL DEFAULT 0;

-- A tenant's own weight, cap and rate limit in a queue (0: the queue's
-- default).
CREATE TABLE fair_tenants (
    queue          TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    weight         INTEGER NOT NULL,
    max_active     INTEGER NOT NULL,
    rate_limit     INTEGER NOT NULL DEFAULT 0,
    rate_period_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, tenant)
) WITHOUT ROWID;

-- A job type's rate limit in a queue.
CREATE TABLE fair_types (
    queue          TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    rate_limit     INTEGER NOT NULL,
    rate_period_us INTEGER NOT NULL,
    PRIMARY KEY (queue, type)
) WITHOUT ROWID;

-- Each rate limit's GCRA theoretical arrival time (unix µs), by queue and
-- limit ('t:<tenant>', 'y:<type>').
CREATE TABLE rate_state (
    queue TEXT    NOT NULL,
    limit_key TEXT NOT NULL,
    tat   INTEGER NOT NULL,
    PRIMARY KEY (queue, limit_key)
) WITHOUT ROWID;

-- The tags handed out: per queue and priority, v is the tag of the last
-- job fetched; per queue, priority and tenant, next is the tenant's next
-- tag. Deleted when the queue has no pending job left.
CREATE TABLE fair_clock (
    queue    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    v        INTEGER NOT NULL,
    PRIMARY KEY (queue, priority)
) WITHOUT ROWID;
CREATE TABLE fair_tags (
    queue    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    tenant   TEXT    NOT NULL,
    next     INTEGER NOT NULL,
    PRIMARY KEY (queue, priority, tenant)
) WITHOUT ROWID;

-- jobs.fair_tag: a pending or active job's tag in a fair queue; -1 while it
-- waits to be tagged (it became pending in a fair queue and the
-- transaction that tags such jobs, in seq order, has not run yet); NULL in
-- a queue that was not fair when the job became pending.
ALTER TABLE jobs ADD COLUMN fair_tag INTEGER;
-- Fetch order of a fair queue. Jobs of queues without fairness have no tag
-- and cost this index nothing.
CREATE INDEX jobs_fair ON jobs (queue, priority, fair_tag, seq)
    WHERE state = 'pending' AND fair_tag IS NOT NULL;
-- Jobs waiting for their tag.
CREATE INDEX jobs_untagged ON jobs (queue, seq) WHERE state = 'pending' AND fair_tag = -1;

-- Tenants whose jobs of a queue are paused (FairBroker.QueueTenantPause).
CREATE TABLE tenant_paused (
    queue  TEXT NOT NULL,
    tenant TEXT NOT NULL,
    PRIMARY KEY (queue, tenant)
) WITHOUT ROWID;
