-- 0001: the initial schema. Times are unix milliseconds of the broker clock;
-- NULL means "not set". Durations are nanoseconds.

CREATE TABLE jobs (
    -- seq orders jobs FIFO among equal priorities; it only grows.
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    data         BLOB,
    priority     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    tenant_id    TEXT    NOT NULL DEFAULT '',
    company_id   TEXT    NOT NULL DEFAULT '',
    headers      TEXT,
    unique_key   TEXT,
    timeout_ns   INTEGER NOT NULL DEFAULT 0,
    state        TEXT    NOT NULL CHECK (state IN ('scheduled', 'pending', 'active', 'completed', 'dead', 'cancelled', 'expired')),
    created_at   INTEGER NOT NULL,
    run_at       INTEGER NOT NULL,
    expires_at   INTEGER,
    started_at   INTEGER,
    finished_at  INTEGER,
    last_error   TEXT    NOT NULL DEFAULT '',
    result       BLOB,
    progress     BLOB,
    -- lease_token is the fencing token of the latest lease; it only grows.
    lease_token  INTEGER NOT NULL DEFAULT 0,
    lease_until  INTEGER,
    worker_id    TEXT    NOT NULL DEFAULT '',
    -- Jobs are addressed by queue and id.
    UNIQUE (queue, id)
);

-- Fetch order: highest priority first, FIFO among equals.
CREATE INDEX jobs_fetch ON jobs (queue, state, priority DESC, seq);
-- Due scheduled jobs (and the scheduled listing).
CREATE INDEX jobs_due ON jobs (queue, run_at, seq) WHERE state = 'scheduled';
-- Expired leases (and the active listing).
CREATE INDEX jobs_lease ON jobs (queue, lease_until, seq) WHERE state = 'active';
-- Pending jobs with a TTL.
CREATE INDEX jobs_ttl ON jobs (queue, expires_at) WHERE state = 'pending' AND expires_at IS NOT NULL;
-- Retention and listing of finished jobs, newest first.
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at DESC, seq DESC) WHERE finished_at IS NOT NULL;
-- A unique key is held while its job is unfinished.
CREATE UNIQUE INDEX jobs_unique ON jobs (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'pending', 'active');

CREATE TABLE queues (
    name   TEXT    PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- counters holds the global fencing-token counter.
CREATE TABLE counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('lease_token', 0);
