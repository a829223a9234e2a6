-- 0014: the fetch index holds pending jobs only. jobs_fetch indexed every
-- job in every state, so each lease and each completion moved the job's
-- entry within it (a delete and an insert, and their pages written to the
-- WAL), though only pending jobs are ever read in its order. Counts by
-- state read the partial index of each state instead (jobs_due, jobs_lease,
-- jobs_finished), which requires every finished job to have finished_at:
-- every release has set it, and the backfill covers a row that lacks it.
DROP INDEX jobs_fetch;
CREATE INDEX jobs_pending ON jobs (queue, priority, seq) WHERE state = 'pending';
UPDATE jobs SET finished_at = coalesce(started_at, run_at)
    WHERE finished_at IS NULL AND state IN ('completed', 'dead', 'cancelled', 'expired');
