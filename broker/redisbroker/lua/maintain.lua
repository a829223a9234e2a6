-- maintain.lua does a queue's housekeeping, each step touching at most
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[9],
--   under the same {queue} hash tag
-- ARGV[1] jobs: recovers expired leases, promotes due scheduled jobs, expires
-- jobs past their ExpiresAt, and removes completed and dead jobs past the
-- retention rules (body, state hash, attempt history, index entries and
-- unique key). A recovered lease's attempt is added to its job's history
-- as lease expired (lib.lua).
--
-- KEYS[1] scheduled zset  KEYS[2] pending zset  KEYS[3] active zset
-- KEYS[4] completed zset  KEYS[5] dead zset     KEYS[6] expired zset
-- KEYS[7] seq counter     KEYS[8] ttl zset      KEYS[9] job hash prefix
-- KEYS[10] unique-key prefix
-- KEYS[11] wake channel (optional): told when jobs became pending here
-- ARGV[1] limit  ARGV[2] completed max age ms (0: keep)
-- ARGV[3] completed max count (0: no limit)  ARGV[4] dead max age ms (0: keep)
-- ARGV[5] max crashes (0: off): a recovered job whose history then ends with
--   that many lease_expired attempts goes to dead (quarantined)
-- ARGV[6] the quarantined job's last error
-- Returns {recovered, dead, promoted, expired, removed, more, quarantined}:
--   more is 1 when a step stopped at the limit (call again), else 0;
--   quarantined counts the jobs of dead that the max crashes rule took.

local limit = tonumber(ARGV[1])
local now, now_us = clock()
local recovered, dead, expired, removed, more, quarantined = 0, 0, 0, 0, 0, 0
local max_crashes = tonumber(ARGV[5])

-- crashed_out reports whether the attempt just recorded for id ends a run of
-- max_crashes lease_expired attempts: only the last entries of its history
-- are read, and only when the rule is on.
local function crashed_out(id)
  if max_crashes <= 0 then
    return false
  end
  local tail = redis.call('LRANGE', hist_key(KEYS[9], id), -max_crashes, -1)
  if #tail < max_crashes then
    return false
  end
  for _, e in ipairs(tail) do
    if not string.find(e, '"lease_expired"', 1, true) then
      return false
    end
  end
  return true
end

-- full notes a step that took as many jobs as the limit allows.
local function full(n)
  if n >= limit then
    more = 1
  end
end

local leases = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', fmt(now), 'LIMIT', 0, limit)
full(#leases)
for _, id in ipairs(leases) do
  local job_key = KEYS[9] .. id
  local v = redis.call('HMGET', job_key, 'a', 'm', 'w', 'st')
  if v[1] then
    record_attempt(KEYS[9], id, v[1], v[3], v[4], now, 'lease_expired', 'lease expired')
  end
  if not v[1] then
    redis.call('ZREM', KEYS[3], id)
  elseif crashed_out(id) then
    finish(KEYS[3], KEYS[5], 'dead', job_key, id, KEYS[10], now, now_us)
    redis.call('HSET', job_key, 'le', ARGV[6])
    dead = dead + 1
    quarantined = quarantined + 1
  elseif tonumber(v[1]) < tonumber(job_number(KEYS[9], id, 'm', v[2])) then
    redis.call('ZREM', KEYS[3], id)
    make_pending(KEYS[2], KEYS[7], job_key, id, true)
    recovered = recovered + 1
  else
    finish(KEYS[3], KEYS[5], 'dead', job_key, id, KEYS[10], now, now_us)
    redis.call('HSET', job_key, 'le', 'lease expired')
    dead = dead + 1
  end
end

local promoted = promote(KEYS[1], KEYS[2], KEYS[7], KEYS[9], now, limit)
full(promoted)

local stale = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', fmt(now), 'LIMIT', 0, limit)
full(#stale)
for _, id in ipairs(stale) do
  local job_key = KEYS[9] .. id
  local v = redis.call('HMGET', job_key, 's', 'e')
  local from = ({scheduled = KEYS[1], pending = KEYS[2]})[v[1] or '']
  if from and v[2] and tonumber(v[2]) <= now then
    finish(from, KEYS[6], 'expired', job_key, id, KEYS[10], now, now_us)
    expired = expired + 1
  end
  -- Jobs that started, finished or lost their ExpiresAt leave the index too.
  redis.call('ZREM', KEYS[8], id)
end

-- remove deletes finished jobs of state whole.
local function remove(zset, ids, state)
  full(#ids)
  remove_finished(zset, KEYS[8], KEYS[9], ids, state)
  removed = removed + #ids
end

local completed_age, completed_count, dead_age = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if completed_age > 0 then
  remove(KEYS[4], redis.call('ZRANGEBYSCORE', KEYS[4], '-inf',
    fmt(now_us - completed_age * 1000), 'LIMIT', 0, limit), 'completed')
end
if completed_count > 0 then
  local excess = redis.call('ZCARD', KEYS[4]) - completed_count
  if excess > 0 then
    remove(KEYS[4], redis.call('ZRANGE', KEYS[4], 0, math.min(excess, limit) - 1), 'completed')
  end
end
if dead_age > 0 then
  remove(KEYS[5], redis.call('ZRANGEBYSCORE', KEYS[5], '-inf',
    fmt(now_us - dead_age * 1000), 'LIMIT', 0, limit), 'dead')
end
if KEYS[11] and recovered + promoted > 0 then
  redis.call('PUBLISH', KEYS[11], '0')
end
return {recovered, dead, promoted, expired, removed, more, quarantined}
