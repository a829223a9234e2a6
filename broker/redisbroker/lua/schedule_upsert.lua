-- schedule_upsert.lua creates or replaces a schedule's definition in its
-- claim hash (<prefix>:{queue}:cron:<name>), keeping its claim state.
--
-- KEYS[1] the schedule's claim hash
-- ARGV[1] definition JSON (opaque here)
-- ARGV[2] timing: spec, time zone and queue joined; a change resets 'since'
-- ARGV[3] version, ARGV[4] created ms ('' for now), ARGV[5] paused ('0'|'1'):
--         inherited from the hash in the old queue when the schedule moves
--         queue, else '0', '', '0'
-- Returns {version, created ms, updated ms, paused, since ms, last tick ms}
--
-- Hash fields: def, timing, ver, created, updated, paused, since, last.

local now = clock()
local ver, created, paused, since, last
local v = redis.call('HMGET', KEYS[1], 'ver', 'created', 'paused', 'since', 'last', 'timing')
if v[1] then
  ver, created, paused, since, last = tonumber(v[1]), v[2], v[3], v[4], v[5]
  if v[6] ~= ARGV[2] then
    since = fmt(now)
  end
else
  ver = tonumber(ARGV[3])
  created = ARGV[4]
  if created == '' then
    created = fmt(now)
  end
  paused, since, last = ARGV[5], fmt(now), '0'
end
ver = ver + 1
redis.call('HSET', KEYS[1], 'def', ARGV[1], 'timing', ARGV[2], 'ver', fmt(ver), 'created', created,
  'updated', fmt(now), 'paused', paused, 'since', since, 'last', last)
return {fmt(ver), created, fmt(now), paused, since, last}
