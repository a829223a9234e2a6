-- lib.lua is not a script: scripts.go prepends it to every script below, so
-- they share one definition of time, scores and state moves.
--
-- Job hash fields (<prefix>:{queue}:j:<id>): id, t type, d data, p priority,
-- m max attempts, a attempt, tn tenant, co company, h headers (JSON), u unique
-- key, to timeout (ns), s state, c created, r run at, e expires at, st started,
-- f finished, le last error, res result, pg progress, tk lease token,
-- lu lease until, w worker. Times are unix milliseconds.
--
-- Finished-state zsets are scored in unix microseconds so that jobs finished
-- in the same millisecond still list newest first.

if redis.replicate_commands then
  redis.replicate_commands()
end

local MAX_PRIORITY = 1000
local PRIORITY_SHIFT = 1099511627776 -- 2^40: seq stays below it, the score stays exact below 2^53

-- fmt renders an integral number exactly (Lua would print 1.7e+12).
local function fmt(n)
  return string.format('%.0f', n)
end

-- clock returns the Redis time in unix milliseconds and microseconds.
local function clock()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.floor(us / 1000), us
end

-- pending_score gives the next pending position for a priority: higher
-- priority first, then FIFO by the queue's sequence counter.
local function pending_score(seq_key, priority)
  local seq = redis.call('INCR', seq_key)
  return fmt((MAX_PRIORITY - priority) * PRIORITY_SHIFT + seq)
end

-- make_pending puts a job at the back of its priority in the pending zset.
local function make_pending(pending_key, seq_key, job_key, id)
  local p = tonumber(redis.call('HGET', job_key, 'p') or '0')
  redis.call('ZADD', pending_key, pending_score(seq_key, p), id)
  redis.call('HSET', job_key, 's', 'pending')
  redis.call('HDEL', job_key, 'lu')
end

-- release_unique frees the job's unique key if the job still holds it.
local function release_unique(unique_prefix, job_key, id)
  local u = redis.call('HGET', job_key, 'u')
  if u and u ~= '' and redis.call('GET', unique_prefix .. u) == id then
    redis.call('DEL', unique_prefix .. u)
  end
end

-- finish moves a job from the zset it is in to a final state's zset.
local function finish(from_key, to_key, state, job_key, id, unique_prefix, now_ms, now_us)
  redis.call('ZREM', from_key, id)
  redis.call('ZADD', to_key, fmt(now_us), id)
  redis.call('HSET', job_key, 's', state, 'f', fmt(now_ms))
  redis.call('HDEL', job_key, 'lu')
  release_unique(unique_prefix, job_key, id)
end

-- promote moves up to limit due scheduled jobs to pending; returns how many.
local function promote(scheduled_key, pending_key, seq_key, job_prefix, now_ms, limit)
  local ids = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', fmt(now_ms), 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', scheduled_key, id)
    local job_key = job_prefix .. id
    if redis.call('EXISTS', job_key) == 1 then
      make_pending(pending_key, seq_key, job_key, id)
    end
  end
  return #ids
end

-- check_lease returns 1 if the job is active under token, 0 if it does not
-- exist, -1 if the lease is lost.
local function check_lease(job_key, token)
  local v = redis.call('HMGET', job_key, 's', 'tk')
  if not v[1] then
    return 0
  end
  if v[1] ~= 'active' or v[2] ~= token then
    return -1
  end
  return 1
end

-- retry_attempt records a failed attempt of an active job: its error and,
-- when max_override > 0, a new max attempts (stored first). If attempts are
-- left and discard is not '1', the job is scheduled again after delay_ms
-- and it returns true; otherwise it returns false and the caller moves the
-- job to dead (with whatever else that transition does).
local function retry_attempt(active_key, scheduled_key, job_key, id, err, delay_ms, discard, max_override, now_ms)
  redis.call('HSET', job_key, 'le', err)
  if tonumber(max_override) > 0 then
    redis.call('HSET', job_key, 'm', max_override)
  end
  local v = redis.call('HMGET', job_key, 'a', 'm')
  if discard == '1' or tonumber(v[1]) >= tonumber(v[2]) then
    return false
  end
  local due = fmt(now_ms + tonumber(delay_ms))
  redis.call('ZREM', active_key, id)
  redis.call('ZADD', scheduled_key, due, id)
  redis.call('HSET', job_key, 's', 'scheduled', 'r', due)
  redis.call('HDEL', job_key, 'lu')
  return true
end
