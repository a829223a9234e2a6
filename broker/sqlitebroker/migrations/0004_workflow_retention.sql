-- 0004: retention of finished workflow runs (WorkflowRunMaintain). Runs are
-- read oldest finished first through workflow_runs_finished, and the number
-- of finished runs per queue is kept in workflow_finished_counts by
-- triggers, so that applying a count rule reads only the runs it removes.

CREATE INDEX workflow_runs_finished ON workflow_runs (queue, finished_at, id)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE workflow_finished_counts (
    queue TEXT    PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO workflow_finished_counts (queue, n)
    SELECT queue, count(*) FROM workflow_runs WHERE state IN ('succeeded', 'failed', 'cancelled') GROUP BY queue;

-- A run finishes once: running → succeeded, failed or cancelled.
CREATE TRIGGER workflow_runs_finish AFTER UPDATE OF state ON workflow_runs
    WHEN old.state = 'running' AND new.state IN ('succeeded', 'failed', 'cancelled')
BEGIN
    INSERT INTO workflow_finished_counts (queue, n) VALUES (new.queue, 1)
        ON CONFLICT (queue) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER workflow_runs_forget AFTER DELETE ON workflow_runs
    WHEN old.state IN ('succeeded', 'failed', 'cancelled')
BEGIN
    UPDATE workflow_finished_counts SET n = n - 1 WHERE queue = old.queue;
END;
