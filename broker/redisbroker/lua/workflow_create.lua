-- workflow_create.lua stores a run and inserts the jobs of its root steps,
-- or returns the run that already holds the idempotency key.
--
-- KEYS: see workflow_lib.lua (KEYS[12] is the idempotency key).
-- ARGV[1] run id  ARGV[2] workflow  ARGV[3] tenant  ARGV[4] company
-- ARGV[5] idempotency key ('' for none)  ARGV[6] input JSON ('' for none)
-- ARGV[7] definition JSON (see workflow_lib.lua)
-- Returns {'ok', created ms} | {'exists', run id} | {'dup'} (run id taken)
--   | {'dupjob', job id} (a job id of the run is taken). Checks run first.

if ARGV[5] ~= '' then
  local holder = redis.call('GET', KEYS[12])
  if holder then
    return {'exists', holder}
  end
end
if redis.call('EXISTS', RUN) == 1 then
  return {'dup'}
end
local def = cjson.decode(ARGV[7])
local function taken(tpl)
  return type(tpl) == 'table' and redis.call('HEXISTS', body_key(KEYS[8]), tpl.id) == 1
end
for _, s in ipairs(def.steps) do
  for _, tpl in ipairs({s.job, s.comp}) do
    if taken(tpl) then
      return {'dupjob', tpl.id}
    end
  end
end
-- Each hook on its own: ipairs({def.ok, def.fail}) stops at a missing ok.
if taken(def.ok) then
  return {'dupjob', def.ok.id}
end
if taken(def.fail) then
  return {'dupjob', def.fail.id}
end

local now = clock()
local f = {'id', ARGV[1], 'wf', ARGV[2], 'st', 'running', 'c', fmt(now), 'def', ARGV[7], 'nc', '0'}
local optional = {tn = ARGV[3], co = ARGV[4], ik = ARGV[5], ['in'] = ARGV[6]}
for k, v in pairs(optional) do
  if v ~= '' then
    f[#f + 1] = k
    f[#f + 1] = v
  end
end
redis.call('HSET', RUN, unpack(f))
for _, s in ipairs(def.steps) do
  if type(s.deps) ~= 'table' or #s.deps == 0 then
    wf_insert(s.job, now)
    redis.call('HSET', RUN, 's:' .. s.name, 'pending')
  else
    redis.call('HSET', RUN, 's:' .. s.name, 'waiting')
  end
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[12], ARGV[1])
end
redis.call('ZADD', KEYS[11] .. 'running:' .. ARGV[2], fmt(now), ARGV[1])
return {'ok', now}
