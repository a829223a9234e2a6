-- workflow_maintain.lua removes a queue's finished runs past the retention
-- rules, each one whole: its hash, its state index entry, its entry in the
-- finished-runs index, its idempotency key, and the finished jobs that
-- carried it (hash, index entries, unique key). A run one of whose jobs is
-- still scheduled, pending or active (a compensation or hook not yet done)
-- is kept for a later call. Each rule examines at most ARGV[1] runs, the
-- oldest first.
--
-- KEYS[1] completed zset  KEYS[2] dead zset  KEYS[3] cancelled zset
-- KEYS[4] expired zset    KEYS[5] ttl zset   KEYS[6] job hash prefix
-- KEYS[7] unique-key prefix  KEYS[8] run hash prefix
-- KEYS[9] run index prefix (+ state .. ':' .. workflow)
-- KEYS[10] idempotency key prefix
-- KEYS[11] finished-runs zset: run id → finished time (unix ms)
-- ARGV[1] limit  ARGV[2] max age ms (0: keep)  ARGV[3] max count (0: no limit)
-- Returns the number of runs removed.

local limit, max_age, max_count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local finished_jobs = {completed = KEYS[1], dead = KEYS[2], cancelled = KEYS[3], expired = KEYS[4]}
local removed = 0

-- job_ids lists the ids of every job a run's definition may have inserted.
local function job_ids(def)
  local ids = {}
  for _, s in ipairs(def.steps) do
    ids[#ids + 1] = s.job.id
    if type(s.comp) == 'table' then
      ids[#ids + 1] = s.comp.id
    end
  end
  -- Not ipairs({def.ok, def.fail}): it would stop at a missing ok hook.
  if type(def.ok) == 'table' then
    ids[#ids + 1] = def.ok.id
  end
  if type(def.fail) == 'table' then
    ids[#ids + 1] = def.fail.id
  end
  return ids
end

-- remove_run removes finished run id whole and returns true, or returns
-- false when the run is not removable now.
local function remove_run(id)
  local run_key = KEYS[8] .. id
  local v = redis.call('HMGET', run_key, 'st', 'wf', 'ik', 'def')
  if not v[1] then
    redis.call('ZREM', KEYS[11], id) -- an entry left without its run
    return false
  end
  if v[1] == 'running' then
    return false
  end
  local ids = job_ids(cjson.decode(v[4]))
  local states = {}
  for i, jid in ipairs(ids) do
    local s = redis.call('HGET', KEYS[6] .. jid, 's')
    if s and not finished_jobs[s] then
      return false
    end
    states[i] = s or false
  end
  for i, jid in ipairs(ids) do
    if states[i] then
      local job_key = KEYS[6] .. jid
      redis.call('ZREM', finished_jobs[states[i]], jid)
      redis.call('ZREM', KEYS[5], jid)
      release_unique(KEYS[7], job_key, jid)
      delete_job(KEYS[6], jid)
    end
  end
  redis.call('ZREM', KEYS[9] .. v[1] .. ':' .. v[2], id)
  redis.call('ZREM', KEYS[11], id)
  if v[3] and redis.call('GET', KEYS[10] .. v[3]) == id then
    redis.call('DEL', KEYS[10] .. v[3])
  end
  redis.call('DEL', run_key)
  removed = removed + 1
  return true
end

if max_age > 0 then
  local now = clock()
  local ids = redis.call('ZRANGEBYSCORE', KEYS[11], '-inf', '(' .. fmt(now - max_age), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    remove_run(id)
  end
end
if max_count > 0 then
  local excess = redis.call('ZCARD', KEYS[11]) - max_count
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', KEYS[11], 0, math.min(excess, limit) - 1)) do
      remove_run(id)
    end
  end
end
return removed
