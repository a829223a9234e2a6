-- insert.lua stores a batch of jobs of one queue: all or none, or each on
-- its own (the batches of concurrent JobInsert calls the broker combines).
--
-- KEYS[1] scheduled zset   KEYS[2] pending zset   KEYS[3] seq counter
-- KEYS[4] ttl zset         KEYS[5] job hash prefix KEYS[6] unique-key prefix
-- KEYS[7] optional: the queue's wake channel; idle workers (JobWait) hear
--   on it the milliseconds until the batch's earliest job is due (0: now),
--   unless jobs were pending already (lib.lua wake_worth)
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[5],
--   under the same {queue} hash tag
-- ARGV[1] number of jobs n
-- ARGV[2] 'each' to store every job that passes its checks, else all or none;
--   followed by '+t' when some job has a tenant (only then are bodies read
--   for it)
-- ARGV[3] max queue length of the jobs without options (0: no limit)
-- ARGV[4] number k of jobs with options, then k pairs: job index, options
--   "run at ms|delay ms|ttl ms|max queue length|delete on complete (0 or
--   1)|unique slot" (run at '' when unset; the unique slot,
--   broker.UniqueSlot of the job's tenant and key, last, as it may hold '|')
-- then n triples: id, body (lib.lua's layout without its leading "c|"),
--   priority (1..1000, 1 first; the client has replaced 0 by the default)
-- A job due now with no unique key and no TTL gets no state hash (see
-- lib.lua): one HMGET entry, one HSET entry and one ZADD entry. A job with a
-- tenant also gets an entry in its tenant's index zset (lib.lua): one ZADD
-- entry, the batch's written with one ZADD per tenant.
-- Returns, all or none: {'dup', index, existing id, unique slot ('' for an
--   id collision)} | {'full', index, scheduled + pending count} | {'ok',
--   created ms, then for each job that is not pending with run at =
--   created: index, 'scheduled', run at ms, ''}. In 'each' mode always 'ok',
--   the list also naming each job not stored: index, 'dup', existing id,
--   unique slot | index, 'full', count, ''.
-- Every check runs before the first write.

local n = tonumber(ARGV[1])
local each = string.sub(ARGV[2], 1, 4) == 'each'
local tenants = string.sub(ARGV[2], -2) == '+t'
local maxlen0 = tonumber(ARGV[3])
local k = tonumber(ARGV[4])
local bodies = body_key(KEYS[5])

-- One plain job (the common Add): the same checks and writes as below,
-- without the batch's tables; HSETNX checks the id and writes the body.
if n == 1 and k == 0 then
  local id = ARGV[5]
  if maxlen0 > 0 then
    if redis.call('HEXISTS', bodies, id) == 1 then
      return insert_reject(each, 1, 'dup', id, '')
    end
    local queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    if queued + 1 > maxlen0 then
      return insert_reject(each, 1, 'full', fmt(queued), '')
    end
  end
  local now = clock()
  local body = int(now) .. '|' .. ARGV[6]
  if redis.call('HSETNX', bodies, id, body) == 0 then
    return insert_reject(each, 1, 'dup', id, '')
  end
  local tn = nil
  if tenants then
    tn = body_tenant(body)
  end
  local policy, fair = queue_policy(KEYS[3])
  local wake = KEYS[7] and wake_worth(KEYS[2], policy)
  local score = pending_score(KEYS[3], tonumber(ARGV[7]), tn, fair)
  redis.call('ZADD', KEYS[2], score, id)
  tindex_move(KEYS[5], tn, id, nil, 'pending', score)
  if wake_for(wake, tonumber(score)) then
    redis.call('PUBLISH', KEYS[7], '0')
  end
  return {'ok', now}
end
-- The lib functions only a batch calls are created here, not before the
-- single job's path above (scripts.go libSplit).
-- lib: the rest
local opts = {}
for j = 1, k do
  local run_at, delay, ttl, maxlen, dc, u = string.match(ARGV[4 + 2 * j], '^(%d*)|(%d+)|(%d+)|(%d+)|([01])|(.*)$')
  delay, ttl = tonumber(delay), tonumber(ttl)
  opts[tonumber(ARGV[3 + 2 * j])] = {run_at = run_at, delay = delay, ttl = ttl, maxlen = tonumber(maxlen), u = u,
    dc = dc == '1', hash = run_at ~= '' or delay > 0 or ttl > 0 or u ~= '' or dc == '1'}
end
local J = 4 + 2 * k -- job i's fields are ARGV[J + 3i - 2 .. J + 3i]
local ids = {}
for i = 1, n do
  ids[i] = ARGV[J + 3 * i - 2]
end
-- One HMGET per 1000 ids finds ids already taken (unpack is bounded by
-- Lua's stack).
local taken = {}
for c = 1, n, 1000 do
  local last = math.min(c + 999, n)
  local v = redis.call('HMGET', bodies, unpack(ids, c, last))
  for x = 1, last - c + 1 do
    if v[x] then
      taken[c + x - 1] = true
    end
  end
end

local out = {'ok', 0}
local rejected = {}
local accepted = 0
local queued = -1
local seen_id, seen_unique = {}, {}
-- check returns nil if job i may be stored, else its rejection.
local function check(i)
  local id = ids[i]
  if taken[i] or seen_id[id] then
    return {'dup', id, ''}
  end
  local o = opts[i]
  local maxlen = maxlen0
  if o then
    maxlen = o.maxlen
    local u = o.u
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
  if maxlen > 0 then
    if queued < 0 then
      queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    end
    if queued + accepted + 1 > maxlen then
      return {'full', fmt(queued + accepted), ''}
    end
  end
  seen_id[id] = true
  if o and o.u ~= '' then
    seen_unique[o.u] = id
  end
  return nil
end
for i = 1, n do
  local r = check(i)
  if r then
    if not each then
      return insert_reject(each, i, r[1], r[2], r[3])
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
-- One INCRBY reserves the batch's positions; scheduled jobs leave gaps. A
-- fair queue places each pending job by its fair tag instead (lib.lua).
local fcfg, fst = fair_keys(KEYS[3])
local policy, fair = queue_policy(KEYS[3])
-- Read before the first write (wake_worth): a batch of scheduled jobs only
-- is announced all the same, for its due time.
local wake = KEYS[7] and wake_worth(KEYS[2], policy)
local seq0 = 0
if not fair then
  seq0 = redis.call('INCRBY', KEYS[3], n) - n
end
local soonest = nil -- ms until the batch's earliest job is due
local low = nil -- the lowest pending score of the batch (wake_for)
local now_s = int(now)
local body_prefix = now_s .. '|'
-- Bodies and pending entries are written with one HSET and one ZADD per
-- 1000 jobs. Scores go to ZADD as Lua numbers: Redis converts them with
-- 17 significant digits, exact below 2^53, and cheaper than fmt.
local body_args, pending, nb, np = {}, {}, 0, 0
local tpending = {} -- tenant index entries of pending jobs, per tenant
local function flush()
  if nb > 0 then
    redis.call('HSET', bodies, unpack(body_args, 1, nb))
    nb = 0
  end
  if np > 0 then
    redis.call('ZADD', KEYS[2], unpack(pending, 1, np))
    np = 0
  end
  tindex_flush(KEYS[5], tpending, nil, 'pending')
end

-- with_options stores the state hash and index entries of job i, which has
-- options, and returns its state and due time. tn is its tenant.
local function with_options(i, id, body, o, tn)
  local due, scheduled = now, false
  if o.run_at ~= '' then
    due = tonumber(o.run_at)
    scheduled = due > now
    if not scheduled then
      due = now
    end
  elseif o.delay > 0 then
    scheduled, due = true, now_up + o.delay
  end
  if not o.hash then
    return 'pending', due
  end
  local state, due_s = 'pending', now_s
  if scheduled then
    state, due_s = 'scheduled', fmt(due)
  end
  local c, m, p = body_head(body)
  local f = {'s', state, 'a', '0', 'p', p, 'm', m, 'c', c, 'r', due_s}
  if tn ~= '' then
    f[#f + 1] = 'tn'
    f[#f + 1] = tn
  end
  if o.u ~= '' then
    f[#f + 1] = 'u'
    f[#f + 1] = o.u
    redis.call('SET', KEYS[6] .. o.u, id)
  end
  if o.ttl > 0 then
    f[#f + 1] = 'e'
    f[#f + 1] = fmt(due + o.ttl)
    redis.call('ZADD', KEYS[4], due + o.ttl, id)
  end
  if o.dc then
    f[#f + 1] = 'dc'
    f[#f + 1] = '1'
  end
  redis.call('HSET', KEYS[5] .. id, unpack(f))
  if scheduled then
    redis.call('ZADD', KEYS[1], due, id)
    tindex_move(KEYS[5], tn, id, nil, 'scheduled', due)
    out[#out + 1] = i
    out[#out + 1] = state
    out[#out + 1] = due_s
    out[#out + 1] = ''
  end
  return state, due
end

for i = 1, n do
  if not rejected[i] then
    local id, body = ids[i], body_prefix .. ARGV[J + 3 * i - 1]
    body_args[nb + 1] = id
    body_args[nb + 2] = body
    nb = nb + 2
    local state, due = 'pending', now
    local o = opts[i]
    local tn = ''
    if tenants then
      tn = body_tenant(body)
    end
    if o then
      state, due = with_options(i, id, body, o, tn)
    end
    if state == 'pending' then
      local prio = tonumber(ARGV[J + 3 * i])
      if fair then
        pending[np + 1] = prio * PRIORITY_SHIFT + fair_tag(fcfg, fst, prio, tn)
      else
        pending[np + 1] = prio * PRIORITY_SHIFT + seq0 + i
      end
      pending[np + 2] = id
      np = np + 2
      if low == nil or pending[np - 1] < low then
        low = pending[np - 1]
      end
      if tn ~= '' then
        tindex_group(tpending, tn, id, pending[np - 1])
      end
    end
    if nb >= 2000 then
      flush()
    end
    if soonest == nil or due - now < soonest then
      soonest = due - now
    end
  end
end
flush()
if wake_for(wake, low) or (KEYS[7] and soonest > 0) then
  redis.call('PUBLISH', KEYS[7], fmt(soonest))
end
return out
