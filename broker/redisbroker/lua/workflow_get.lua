-- workflow_get.lua reads a run and, for each enqueued step, its job's live
-- state, in one consistent snapshot.
--
-- KEYS: see workflow_lib.lua.
-- Returns {} when the run does not exist, else {run (flat HGETALL),
--   {step name, job state, attempt, started ms, last error, ...}}

local run = redis.call('HGETALL', RUN)
if #run == 0 then
  return {}
end
local live = {}
for _, s in ipairs(wf_def().steps) do
  if redis.call('HGET', RUN, 's:' .. s.name) == 'pending' then
    local v = redis.call('HMGET', KEYS[8] .. s.job.id, 's', 'a', 'st', 'le')
    live[#live + 1] = s.name
    live[#live + 1] = v[1] or ''
    live[#live + 1] = v[2] or '0'
    live[#live + 1] = v[3] or ''
    live[#live + 1] = v[4] or ''
  end
end
return {run, live}
