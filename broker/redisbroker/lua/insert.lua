-- insert.lua stores a batch of jobs of one queue, all or none.
--
-- KEYS[1] scheduled zset   KEYS[2] pending zset   KEYS[3] seq counter
-- KEYS[4] ttl zset         KEYS[5] job hash prefix KEYS[6] unique-key prefix
-- KEYS[7] optional: the queue's wake channel; idle workers (JobWait) hear
--   on it the milliseconds until the batch's earliest job is due (0: now)
-- ARGV[1] number of jobs n, then n groups of 14 fields:
--   id, type, data, priority, max attempts, tenant, company, headers JSON,
--   unique key, timeout ns, run at ms ('' when unset), delay ms, ttl ms,
--   max queue length (0: no limit)
-- Returns {'ok', created ms, state_1, run at_1, ..., state_n, run at_n}
--   | {'dup', index, existing id, unique key ('' for an id collision)}
--   | {'full', index, scheduled + pending count}
-- Every check runs before the first write.

local n = tonumber(ARGV[1])
local W = 14
local seen_id, seen_unique = {}, {}
for i = 1, n do
  local b = 1 + (i - 1) * W
  local id, u = ARGV[b + 1], ARGV[b + 9]
  if seen_id[id] or redis.call('EXISTS', KEYS[5] .. id) == 1 then
    return {'dup', i, id, ''}
  end
  seen_id[id] = true
  if u ~= '' then
    if seen_unique[u] then
      return {'dup', i, seen_unique[u], u}
    end
    local holder = redis.call('GET', KEYS[6] .. u)
    if holder then
      local s = redis.call('HGET', KEYS[5] .. holder, 's')
      if s == 'scheduled' or s == 'pending' or s == 'active' then
        return {'dup', i, holder, u}
      end
    end
    seen_unique[u] = id
  end
end

local queued = -1
for i = 1, n do
  local maxlen = tonumber(ARGV[1 + (i - 1) * W + 14])
  if maxlen > 0 then
    if queued < 0 then
      queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    end
    if queued + i > maxlen then
      return {'full', i, queued}
    end
  end
end

local now, now_us = clock()
-- A delay counts from the next whole millisecond, so that a job never falls
-- due before its enqueue + delay (now is rounded down).
local now_up = math.floor((now_us + 999) / 1000)
local out = {'ok', now}
-- One INCRBY reserves the batch's positions; scheduled jobs leave gaps.
local seq0 = redis.call('INCRBY', KEYS[3], n) - n
local soonest = nil -- ms until the batch's earliest job is due
local now_s = fmt(now)
-- Optional hash fields and their ARGV offsets, stored only when not empty.
local OPTIONAL = {{'d', 3}, {'tn', 6}, {'co', 7}, {'h', 8}, {'u', 9}}
local pending = {} -- score, id pairs: written with one ZADD per 1000 jobs
for i = 1, n do
  local b = 1 + (i - 1) * W
  local id, prio = ARGV[b + 1], tonumber(ARGV[b + 4])
  local due, scheduled
  if ARGV[b + 11] ~= '' then
    due = tonumber(ARGV[b + 11])
    scheduled = due > now
    if not scheduled then
      due = now
    end
  else
    local delay = tonumber(ARGV[b + 12])
    scheduled = delay > 0
    due = now
    if scheduled then
      due = now_up + delay
    end
  end
  local state, due_s = 'pending', now_s
  if scheduled then
    state, due_s = 'scheduled', fmt(due)
  end
  local f = {'id', id, 't', ARGV[b + 2], 'p', ARGV[b + 4], 'm', ARGV[b + 5], 'a', '0',
    's', state, 'c', now_s, 'r', due_s}
  for _, o in ipairs(OPTIONAL) do
    local v = ARGV[b + o[2]]
    if v ~= '' then
      f[#f + 1] = o[1]
      f[#f + 1] = v
    end
  end
  if ARGV[b + 10] ~= '0' then
    f[#f + 1] = 'to'
    f[#f + 1] = ARGV[b + 10]
  end
  local ttl = tonumber(ARGV[b + 13])
  if ttl > 0 then
    f[#f + 1] = 'e'
    f[#f + 1] = fmt(due + ttl)
    redis.call('ZADD', KEYS[4], fmt(due + ttl), id)
  end
  redis.call('HSET', KEYS[5] .. id, unpack(f))
  if scheduled then
    redis.call('ZADD', KEYS[1], due_s, id)
  else
    pending[#pending + 1] = fmt((MAX_PRIORITY - prio) * PRIORITY_SHIFT + seq0 + i)
    pending[#pending + 1] = id
    if #pending >= 2000 then
      redis.call('ZADD', KEYS[2], unpack(pending))
      pending = {}
    end
  end
  if ARGV[b + 9] ~= '' then
    redis.call('SET', KEYS[6] .. ARGV[b + 9], id)
  end
  out[#out + 1] = state
  out[#out + 1] = due_s
  if soonest == nil or due - now < soonest then
    soonest = due - now
  end
end
if #pending > 0 then
  redis.call('ZADD', KEYS[2], unpack(pending))
end
if KEYS[7] then
  redis.call('PUBLISH', KEYS[7], fmt(soonest))
end
return out
