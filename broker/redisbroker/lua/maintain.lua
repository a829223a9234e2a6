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
-- ARGV[7] crash spread ms (0: off): with max crashes on, a job recovered
--   after its second lease expiry in a row or later (its first, with max
--   crashes 2) is scheduled after a delay in [0, spread) instead of going
--   back to its place
-- ARGV[8] a random seed for those delays
-- Returns {recovered, dead, promoted, expired, removed, more, quarantined,
--   idle}: more is 1 when a step stopped at the limit (call again), else 0;
--   quarantined counts the jobs of dead that the max crashes rule took;
--   idle is 1 when more is 0 and the queue holds no scheduled, pending or
--   active job, else 0.

local limit = tonumber(ARGV[1])
local now, now_us = clock()
local recovered, dead, expired, removed, more, quarantined = 0, 0, 0, 0, 0, 0
local max_crashes, spread, seed = tonumber(ARGV[5]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- crash_run counts the lease_expired attempts that end id's history (the one
-- just recorded included), reading at most max_crashes entries; 0 when the
-- rule is off.
local function crash_run(id)
  if max_crashes <= 0 then
    return 0
  end
  local tail = redis.call('LRANGE', hist_key(KEYS[9], id), -max_crashes, -1)
  local n = 0
  for i = #tail, 1, -1 do
    if not string.find(tail[i], '"lease_expired"', 1, true) then
      break
    end
    n = n + 1
  end
  return n
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
  lift(KEYS[9], id) -- a lease entry becomes the state hash recovery reads
  local v = redis.call('HMGET', job_key, 'a', 'm', 'w', 'st', 'tn')
  local run = 0
  if v[1] then
    record_attempt(KEYS[9], id, v[1], v[3], v[4], now, 'lease_expired', 'lease expired')
    run = crash_run(id)
  end
  local left = v[1] and tonumber(v[1]) < tonumber(job_number(KEYS[9], id, 'm', v[2]))
  if not v[1] then
    redis.call('ZREM', KEYS[3], id)
  elseif run >= max_crashes and max_crashes > 0 then
    finish(KEYS[3], KEYS[5], 'dead', job_key, id, KEYS[10], now, now_us)
    redis.call('HSET', job_key, 'le', ARGV[6])
    dead = dead + 1
    quarantined = quarantined + 1
  elseif left and spread > 0 and run >= math.max(1, math.min(2, max_crashes - 1)) then
    seed = (seed * 16807) % 2147483647
    local due = fmt(now + seed % spread)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[1], due, id)
    tindex_move(KEYS[9], v[5], id, 'active', 'scheduled', due)
    redis.call('HSET', job_key, 's', 'scheduled', 'r', due, 'cs', '1') -- cs: promote keeps its place
    redis.call('HDEL', job_key, 'lu')
    recovered = recovered + 1
  elseif left then
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
local idle = 0
if more == 0 and redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then
  idle = 1
end
return {recovered, dead, promoted, expired, removed, more, quarantined, idle}
