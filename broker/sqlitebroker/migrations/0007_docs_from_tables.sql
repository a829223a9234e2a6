-- 0007: workflow runs and schedules move into documents (0006), where
-- packages workflow and schedule now keep them; their tables go. Each run
-- becomes a document of kind 'run' in its queue's scope, its steps in
-- declared order inside it; each idempotency key a document of kind 'idem'
-- naming its run; each schedule a document of kind 'schedule' in its
-- queue's scope and an entry (kind 'schedule-queue') of the registry scope
-- '_schedules'. The JSON
-- follows the encoding of broker.WorkflowRun and broker.Schedule; json_patch
-- drops the members that are NULL, as the Go encoding omits them. Times are
-- RFC 3339 in UTC.

INSERT INTO docs (scope, kind, key, version, body)
SELECT r.queue, 'run', r.id, 1, json_patch('{}', json_object(
    'id', r.id, 'queue', r.queue, 'workflow', r.workflow,
    'tenant_id', nullif(r.tenant_id, ''), 'company_id', nullif(r.company_id, ''),
    'idempotency_key', r.idempotency_key, 'state', r.state, 'input', json(CAST(r.input AS TEXT)),
    'error', nullif(r.error, ''), 'failed_step', nullif(r.failed_step, ''),
    'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at / 1000.0, 'unixepoch'),
    'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', r.finished_at / 1000.0, 'unixepoch'),
    'on_success', json(r.on_success), 'on_failure', json(r.on_failure),
    'completions', nullif(r.completions, 0), 'chain', json(r.chain), 'chain_next', nullif(r.chain_next, 0),
    'steps', json((SELECT json_group_array(json(step)) FROM (
        SELECT json_patch('{}', json_object(
            'name', s.name, 'depends_on', json(s.depends_on), 'job', json(s.job),
            'compensation', json(s.compensation),
            'state', CASE s.state WHEN 'running' THEN 'pending' ELSE s.state END,
            'attempts', s.attempts, 'output', json(CAST(s.output AS TEXT)), 'error', nullif(s.error, ''),
            'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', s.started_at / 1000.0, 'unixepoch'),
            'finished_at', strftime('%Y-%m-%dT%H:%M:%fZ', s.finished_at / 1000.0, 'unixepoch'),
            'completed_seq', nullif(s.completed_seq, 0), 'compensation_state', nullif(s.comp_state, ''))) AS step
        FROM workflow_steps s WHERE s.queue = r.queue AND s.run_id = r.id ORDER BY s.position)))))
FROM workflow_runs r;

INSERT INTO doc_index (scope, kind, name, key, score)
SELECT queue, 'run', 'wf:' || workflow, id, created_at FROM workflow_runs
UNION ALL
SELECT queue, 'run', 'wf:' || workflow || ':' || state, id, created_at FROM workflow_runs
UNION ALL
SELECT queue, 'run', 'finished', id, finished_at FROM workflow_runs WHERE state <> 'running';

INSERT INTO docs (scope, kind, key, version, body)
SELECT queue, 'idem', idempotency_key, 1, json_quote(id) FROM workflow_runs WHERE idempotency_key IS NOT NULL;

INSERT INTO docs (scope, kind, key, version, body)
SELECT queue, 'schedule', name, 1, json_patch(def, json_patch('{}', json_object(
    'paused', json(iif(paused, 'true', 'false')), 'version', version,
    'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch'),
    'updated_at', strftime('%Y-%m-%dT%H:%M:%fZ', updated_at / 1000.0, 'unixepoch'),
    'since', strftime('%Y-%m-%dT%H:%M:%fZ', since / 1000.0, 'unixepoch'),
    'last_tick', iif(last_tick > 0, strftime('%Y-%m-%dT%H:%M:%fZ', last_tick / 1000.0, 'unixepoch'), NULL))))
FROM schedules;

INSERT INTO docs (scope, kind, key, version, body)
SELECT '_schedules', 'schedule-queue', name, 1, json_quote(queue) FROM schedules;

INSERT INTO doc_index (scope, kind, name, key, score)
SELECT queue, 'schedule', 'all', name, 0 FROM schedules
UNION ALL
SELECT '_schedules', 'schedule-queue', 'all', name, 0 FROM schedules;

DROP TRIGGER workflow_runs_finish;
DROP TRIGGER workflow_runs_forget;
DROP TABLE workflow_finished_counts;
DROP TABLE workflow_steps;
DROP TABLE workflow_runs;
DROP TABLE schedules;
