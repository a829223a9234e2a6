-- 0012: each job keeps its last finished attempts (broker.Job.Attempts) in
-- attempts, a JSON array of compact entries [attempt, worker id, started,
-- finished, outcome, error], oldest first, at most broker.MaxAttemptHistory.
-- Each entry is written by the statement that records the attempt's outcome
-- (history.go), and the column goes with its row. Jobs stored before have
-- NULL: no history.
ALTER TABLE jobs ADD COLUMN attempts TEXT;
