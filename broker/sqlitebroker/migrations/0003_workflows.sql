-- 0003: durable workflow runs (broker.WorkflowStore). A run's definition is
-- written once at creation; step progress changes in the same transaction
-- as the jobs that carry the steps. Times are unix milliseconds.

CREATE TABLE workflow_runs (
    queue           TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    workflow        TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL DEFAULT '',
    company_id      TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    input           BLOB,
    error           TEXT    NOT NULL DEFAULT '',
    failed_step     TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    on_success      TEXT,   -- JSON broker.WorkflowJob, or NULL
    on_failure      TEXT,   -- JSON broker.WorkflowJob, or NULL
    completions     INTEGER NOT NULL DEFAULT 0, -- steps completed so far
    chain           TEXT,   -- JSON array: step names to compensate, in order
    chain_next      INTEGER NOT NULL DEFAULT 0, -- compensations started
    PRIMARY KEY (queue, id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_runs_list ON workflow_runs (queue, workflow, state, created_at DESC, id DESC);

CREATE TABLE workflow_steps (
    queue         TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    position      INTEGER NOT NULL, -- declared order
    name          TEXT    NOT NULL,
    depends_on    TEXT    NOT NULL DEFAULT '[]', -- JSON array of step names
    job           TEXT    NOT NULL,              -- JSON broker.WorkflowJob
    compensation  TEXT,                          -- JSON broker.WorkflowJob, or NULL
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    output        BLOB,
    error         TEXT    NOT NULL DEFAULT '',
    started_at    INTEGER,
    finished_at   INTEGER,
    completed_seq INTEGER NOT NULL DEFAULT 0,
    comp_state    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (queue, run_id, position),
    FOREIGN KEY (queue, run_id) REFERENCES workflow_runs (queue, id) ON DELETE CASCADE
) WITHOUT ROWID;
