-- retry.lua moves a dead, cancelled or expired job back to pending with its
-- attempt count reset, taking its unique key back.
--
-- KEYS[1] dead zset  KEYS[2] cancelled zset  KEYS[3] expired zset
-- KEYS[4] pending zset  KEYS[5] seq counter  KEYS[6] ttl zset
-- KEYS[7] job hash prefix  KEYS[8] unique-key prefix
-- KEYS[9] wake channel (optional): told the job is pending
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[7],
--   under the same {queue} hash tag
-- ARGV[1] id  ARGV[2] tenant scope ('' for none): another tenant's job, or
--   one with no tenant, is not found
-- Returns {'ok', job} with the job (see lib.lua) after the change
--   | {'notfound'} | {'wrongstate', state} | {'dup', holder id, unique slot}
--   (the job's 'u' is its tenant's slot, broker.UniqueSlot: the holder is a
--   job of the same tenant)

local id = ARGV[1]
local job_key = KEYS[7] .. id
if ARGV[2] ~= '' and job_tenant(KEYS[7], id) ~= ARGV[2] then
  return {'notfound'}
end
local v = redis.call('HMGET', job_key, 's', 'u')
local s, u = v[1] or job_state(KEYS[7], id), v[2]
if not s then
  return {'notfound'}
end
local from = {dead = KEYS[1], cancelled = KEYS[2], expired = KEYS[3]}
if not from[s] then
  return {'wrongstate', s}
end
if u and u ~= '' then
  local holder = redis.call('GET', KEYS[8] .. u)
  if holder and holder ~= id then
    local hs = job_state(KEYS[7], holder)
    if hs == 'scheduled' or hs == 'pending' or hs == 'active' then
      return {'dup', holder, u}
    end
  end
  redis.call('SET', KEYS[8] .. u, id)
end
local now = clock()
redis.call('ZREM', from[s], id)
redis.call('ZREM', KEYS[6], id)
-- The old ExpiresAt has passed: a retried job must not expire at once.
redis.call('HDEL', job_key, 'f', 'e', 'lu')
redis.call('HSET', job_key, 'a', '0', 'r', fmt(now))
make_pending(KEYS[4], KEYS[5], job_key, id)
if KEYS[9] then
  redis.call('PUBLISH', KEYS[9], '0')
end
return {'ok', read_job(KEYS[7], id)}
