-- workflow_fail.lua records a failed attempt of a job of a run, as fail.lua
-- does. When a step's job dies, the same transition fails the run, cancels
-- its other open steps and starts the compensations of completed steps (most
-- recently completed first), then the failure hook. A compensation's death
-- starts the next one all the same.
--
-- KEYS: see workflow_lib.lua.
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] error text  ARGV[4] retry delay ms
-- ARGV[5] '1' to discard  ARGV[6] max attempts override (> 0: stored first)
-- Returns {code, state}: code 1 done (state is the job's new state), 0 run
--   or job not found, -1 lease lost (nothing changed).

local id = ARGV[1]
if redis.call('EXISTS', RUN) == 0 then
  return {0, ''}
end
local def = wf_def()
local kind, s = wf_find(def, id)
if not kind then
  return {0, ''}
end
local job_key = KEYS[8] .. id
local code = check_lease(KEYS[8], id, ARGV[2])
if code ~= 1 then
  return {code, ''}
end
local now, now_us = clock()
local state = redis.call('HGET', RUN, 'st')
local open_step = kind == 'step' and state == 'running' and redis.call('HGET', RUN, 's:' .. s.name) == 'pending'
if open_step then
  wf_record(s, job_key)
  redis.call('HSET', RUN, 'e:' .. s.name, ARGV[3])
end
if retry_attempt(KEYS[3], KEYS[1], job_key, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], now) then
  return {1, 'scheduled'}
end
finish(KEYS[3], KEYS[5], 'dead', job_key, id, KEYS[9], now, now_us)
if open_step then
  redis.call('HSET', RUN, 's:' .. s.name, 'failed', 'fn:' .. s.name, fmt(now))
  wf_fail_run(def, s, ARGV[3], now, now_us)
elseif kind == 'comp' and redis.call('HGET', RUN, 'c:' .. s.name) == 'pending' then
  redis.call('HSET', RUN, 'c:' .. s.name, 'failed')
  wf_advance(def, now)
end
return {1, 'dead'}
