-- insert.lua stores a batch of jobs of one queue: all or none, or each on
-- its own (the batches of concurrent JobInsert calls the broker combines).
--
-- KEYS[1] scheduled zset   KEYS[2] pending zset   KEYS[3] seq counter
-- KEYS[4] ttl zset         KEYS[5] job hash prefix KEYS[6] unique-key prefix
-- KEYS[7] optional: the queue's wake channel; idle workers (JobWait) hear
--   on it the milliseconds until the batch's earliest job is due (0: now)
-- ARGV[1] number of jobs n  ARGV[2] 'each' to store every job that passes
--   its checks, else all or none; then n groups of 5 fields:
--   id, body (lib.lua's layout without its leading "c|"), priority,
--   options, max queue length (0: no limit)
--   options is '' for a job due now with no unique key and no TTL (it gets
--   no state hash, see lib.lua), else "run at ms|delay ms|ttl ms|unique
--   key" (run at '' when unset, unique key last: it may hold '|')
-- Returns, all or none: {'dup', index, existing id, unique key ('' for an
--   id collision)} | {'full', index, scheduled + pending count} | {'ok',
--   created ms, then for each job that is not pending with run at =
--   created: index, 'scheduled', run at ms, ''}. In 'each' mode always 'ok',
--   the list also naming each job not stored: index, 'dup', existing id,
--   unique key | index, 'full', count, ''.
-- Every check runs before the first write. A plain job costs one HMGET
-- entry, one HSET entry and one ZADD entry: no per-job command.

local n = tonumber(ARGV[1])
local each = ARGV[2] == 'each'
local W = 5
local bodies = body_key(KEYS[5])
local ids, opts = {}, {}
for i = 1, n do
  ids[i] = ARGV[2 + (i - 1) * W + 1]
end
-- One HMGET per 1000 ids finds ids already taken (unpack is bounded by
-- Lua's stack).
local taken = {}
for c = 1, n, 1000 do
  local last = math.min(c + 999, n)
  local v = redis.call('HMGET', bodies, unpack(ids, c, last))
  for k = 1, last - c + 1 do
    taken[c + k - 1] = v[k]
  end
end

local out = {'ok', 0}
local rejected = {}
local accepted = 0
local queued = -1
local seen_id, seen_unique = {}, {}
-- check returns nil if job i may be stored, else its rejection.
local function check(i)
  local b = 2 + (i - 1) * W
  local id = ids[i]
  if taken[i] or seen_id[id] then
    return {'dup', id, ''}
  end
  local o = ARGV[b + 4]
  local u = ''
  if o ~= '' then
    local run_at, delay, ttl
    run_at, delay, ttl, u = string.match(o, '^(%d*)|(%d+)|(%d+)|(.*)$')
    opts[i] = {run_at = run_at, delay = tonumber(delay), ttl = tonumber(ttl), u = u}
    if u ~= '' then
      if seen_unique[u] then
        return {'dup', seen_unique[u], u}
      end
      local holder = redis.call('GET', KEYS[6] .. u)
      if holder then
        local s = job_state(KEYS[5], holder)
        if s == 'scheduled' or s == 'pending' or s == 'active' then
          return {'dup', holder, u}
        end
      end
    end
  end
  local maxlen = tonumber(ARGV[b + 5])
  if maxlen > 0 then
    if queued < 0 then
      queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    end
    if queued + accepted + 1 > maxlen then
      return {'full', fmt(queued + accepted), ''}
    end
  end
  seen_id[id] = true
  if u ~= '' then
    seen_unique[u] = id
  end
  return nil
end
for i = 1, n do
  local r = check(i)
  if r then
    if not each then
      return {r[1], i, r[2], r[3]}
    end
    rejected[i] = true
    out[#out + 1] = i
    out[#out + 1] = r[1]
    out[#out + 1] = r[2]
    out[#out + 1] = r[3]
  else
    accepted = accepted + 1
  end
end
if accepted == 0 then
  return out
end

local now, now_us = clock()
-- A delay counts from the next whole millisecond, so that a job never falls
-- due before its enqueue + delay (now is rounded down).
local now_up = math.floor((now_us + 999) / 1000)
out[2] = now
-- One INCRBY reserves the batch's positions; scheduled jobs leave gaps.
local seq0 = redis.call('INCRBY', KEYS[3], n) - n
local soonest = nil -- ms until the batch's earliest job is due
local now_s = fmt(now)
local body_prefix = now_s .. '|'
local body_args, pending = {}, {} -- written with one HSET / ZADD per 1000 jobs
local function flush()
  if #body_args > 0 then
    redis.call('HSET', bodies, unpack(body_args))
    body_args = {}
  end
  if #pending > 0 then
    redis.call('ZADD', KEYS[2], unpack(pending))
    pending = {}
  end
end
local function store(i)
  local b = 2 + (i - 1) * W
  local id, body = ids[i], body_prefix .. ARGV[b + 2]
  local prio = tonumber(ARGV[b + 3])
  body_args[#body_args + 1] = id
  body_args[#body_args + 1] = body
  local o = opts[i]
  local state, due, due_s = 'pending', now, now_s
  if o then
    local scheduled
    if o.run_at ~= '' then
      due = tonumber(o.run_at)
      scheduled = due > now
      if not scheduled then
        due = now
      end
    else
      scheduled = o.delay > 0
      if scheduled then
        due = now_up + o.delay
      end
    end
    if scheduled then
      state, due_s = 'scheduled', fmt(due)
    end
    local c, m, p = body_head(body)
    local f = {'s', state, 'a', '0', 'p', p, 'm', m, 'c', c, 'r', due_s}
    if o.u ~= '' then
      f[#f + 1] = 'u'
      f[#f + 1] = o.u
      redis.call('SET', KEYS[6] .. o.u, id)
    end
    if o.ttl > 0 then
      f[#f + 1] = 'e'
      f[#f + 1] = fmt(due + o.ttl)
      redis.call('ZADD', KEYS[4], fmt(due + o.ttl), id)
    end
    redis.call('HSET', KEYS[5] .. id, unpack(f))
    if scheduled then
      redis.call('ZADD', KEYS[1], due_s, id)
    end
  end
  if state == 'pending' then
    pending[#pending + 1] = fmt((MAX_PRIORITY - prio) * PRIORITY_SHIFT + seq0 + i)
    pending[#pending + 1] = id
  end
  if #body_args >= 2000 then
    flush()
  end
  if state ~= 'pending' then
    out[#out + 1] = i
    out[#out + 1] = state
    out[#out + 1] = due_s
    out[#out + 1] = ''
  end
  if soonest == nil or due - now < soonest then
    soonest = due - now
  end
end
for i = 1, n do
  if not rejected[i] then
    store(i)
  end
end
flush()
if KEYS[7] then
  redis.call('PUBLISH', KEYS[7], fmt(soonest))
end
return out
