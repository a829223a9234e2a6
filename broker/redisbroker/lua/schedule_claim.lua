-- schedule_claim.lua claims one tick of a schedule and inserts the tick's
-- job, atomically: three schedulers racing for one tick write one job.
--
-- KEYS[1] the schedule's claim hash   KEYS[2] scheduled zset (unused: the
-- job is due)                          KEYS[3] pending zset
-- KEYS[4] seq counter   KEYS[5] ttl zset   KEYS[6] job hash prefix
-- KEYS[7] unique-key prefix
-- ARGV[1] tick ms   ARGV[2] expected version ('0': any)
-- ARGV[3..14] the job: id, type, data, priority, max attempts, tenant,
--   company, headers JSON, unique key, timeout ns, ttl ms, max queue length
-- Returns {status, now ms, last tick ms}; status is one of ok, unique_held,
-- queue_full (the tick is consumed) or missing, paused, changed, too_old,
-- taken, early (nothing is written).
--
-- The tick must be after 'since' and 'last', and not after Redis TIME, so a
-- worker clock running ahead can never fire a job early.

local now = clock()
local v = redis.call('HMGET', KEYS[1], 'ver', 'paused', 'since', 'last')
if not v[1] then
  return {'missing', fmt(now), '0'}
end
local last = v[4]
local tick = tonumber(ARGV[1])
local refuse = function(st)
  return {st, fmt(now), last}
end
if v[2] == '1' then
  return refuse('paused')
end
if ARGV[2] ~= '0' and ARGV[2] ~= v[1] then
  return refuse('changed')
end
if tick <= tonumber(v[3]) then
  return refuse('too_old')
end
if tick <= tonumber(last) then
  return refuse('taken')
end
if tick > now then
  return refuse('early')
end

local id, typ, data, prio = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local u, ttl, maxlen = ARGV[11], tonumber(ARGV[13]), tonumber(ARGV[14])
local job_key = KEYS[6] .. id
redis.call('HSET', KEYS[1], 'last', fmt(tick))
last = fmt(tick)
if redis.call('HEXISTS', body_key(KEYS[6]), id) == 1 then
  return refuse('taken') -- the deterministic id is the second guard
end
if u ~= '' then
  local holder = redis.call('GET', KEYS[7] .. u)
  if holder then
    local s = job_state(KEYS[6], holder)
    if s == 'scheduled' or s == 'pending' or s == 'active' then
      return {'unique_held', fmt(now), last}
    end
  end
end
if maxlen > 0 and redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) >= maxlen then
  return {'queue_full', fmt(now), last}
end

local f = {'id', id, 't', typ, 'p', ARGV[6], 'm', ARGV[7], 'a', '0',
  's', 'pending', 'c', fmt(now), 'r', fmt(tick)}
local optional = {d = data, tn = ARGV[8], co = ARGV[9], h = ARGV[10], u = u}
for k, val in pairs(optional) do
  if val ~= '' then
    f[#f + 1] = k
    f[#f + 1] = val
  end
end
if ARGV[12] ~= '0' then
  f[#f + 1] = 'to'
  f[#f + 1] = ARGV[12]
end
if ttl > 0 then
  f[#f + 1] = 'e'
  f[#f + 1] = fmt(tick + ttl)
  redis.call('ZADD', KEYS[5], fmt(tick + ttl), id)
end
redis.call('HSET', job_key, unpack(f))
redis.call('HSET', body_key(KEYS[6]), id, '') -- all its fields are in the hash
redis.call('ZADD', KEYS[3], pending_score(KEYS[4], prio), id)
if u ~= '' then
  redis.call('SET', KEYS[7] .. u, id)
end
return {'ok', fmt(now), last}
