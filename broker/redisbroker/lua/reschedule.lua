-- reschedule.lua moves a scheduled or pending job to a new due
-- time in one step (one-time schedules use it to reschedule).
--
-- KEYS[1] scheduled zset   KEYS[2] pending zset   KEYS[3] seq counter
-- KEYS[4] ttl zset         KEYS[5] job hash prefix
-- ARGV[1] job id   ARGV[2] new due time ms
-- Returns {'ok', state} | {'missing'} | {'state', current state}
-- A TTL keeps its length: ExpiresAt moves with the due time.

local now = clock()
local id = ARGV[1]
local job_key = KEYS[5] .. id
local v = redis.call('HMGET', job_key, 's', 'r', 'e')
if not v[1] then
  return {'missing'}
end
if v[1] ~= 'scheduled' and v[1] ~= 'pending' then
  return {'state', v[1]}
end
local due = tonumber(ARGV[2])
if due < now then
  due = now
end
redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
if v[3] then
  local e = due + (tonumber(v[3]) - tonumber(v[2]))
  redis.call('HSET', job_key, 'e', fmt(e))
  redis.call('ZADD', KEYS[4], fmt(e), id)
end
redis.call('HSET', job_key, 'r', fmt(due))
if due > now then
  redis.call('ZADD', KEYS[1], fmt(due), id)
  redis.call('HSET', job_key, 's', 'scheduled')
  return {'ok', 'scheduled'}
end
make_pending(KEYS[2], KEYS[3], job_key, id)
return {'ok', 'pending'}
