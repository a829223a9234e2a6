-- workflow_complete.lua completes a job of a run under its lease and, in
-- the same transition, records a step's output and inserts the jobs of the
-- steps it unblocks (all their dependencies completed); the last step to
-- complete succeeds the run and inserts its success hook. A compensation's
-- completion starts the next compensation.
--
-- KEYS: see workflow_lib.lua.
-- ARGV[1] job id  ARGV[2] lease token  ARGV[3] result JSON ('' for none)
-- Returns 1 completed, 0 run or job not found, -1 lease lost (unchanged).

local id = ARGV[1]
if redis.call('EXISTS', RUN) == 0 then
  return 0
end
local def = wf_def()
local kind, s = wf_find(def, id)
if not kind then
  return 0
end
local job_key = KEYS[8] .. id
local code = check_lease(KEYS[8], id, ARGV[2])
if code ~= 1 then
  return code
end
local now, now_us = clock()
finish(KEYS[3], KEYS[4], 'completed', job_key, id, KEYS[9], now, now_us)
if ARGV[3] ~= '' then
  redis.call('HSET', job_key, 'res', ARGV[3])
else
  redis.call('HDEL', job_key, 'res')
end

local state = redis.call('HGET', RUN, 'st')
if kind == 'step' and state == 'running' and redis.call('HGET', RUN, 's:' .. s.name) == 'pending' then
  wf_record(s, job_key)
  local seq = redis.call('HINCRBY', RUN, 'nc', 1)
  redis.call('HSET', RUN, 's:' .. s.name, 'completed', 'fn:' .. s.name, fmt(now), 'cs:' .. s.name, seq)
  if ARGV[3] ~= '' then
    redis.call('HSET', RUN, 'o:' .. s.name, ARGV[3])
  end
  redis.call('HDEL', RUN, 'e:' .. s.name)
  local all = true
  for _, w in ipairs(def.steps) do
    local ws = redis.call('HGET', RUN, 's:' .. w.name)
    if ws == 'waiting' then
      local ready = true
      for _, d in ipairs(w.deps) do
        if redis.call('HGET', RUN, 's:' .. d) ~= 'completed' then
          ready = false
          break
        end
      end
      if ready then
        wf_insert(w.job, now)
        redis.call('HSET', RUN, 's:' .. w.name, 'pending')
      end
    end
    if ws ~= 'completed' then
      all = false
    end
  end
  if all then
    wf_set_state('succeeded', now)
    if type(def.ok) == 'table' then
      wf_insert(def.ok, now)
    end
  end
elseif kind == 'comp' and redis.call('HGET', RUN, 'c:' .. s.name) == 'pending' then
  redis.call('HSET', RUN, 'c:' .. s.name, 'completed')
  wf_advance(def, now)
end
return 1
