-- release.lua hands an active job back without counting the attempt: it is
-- pending at once, back at the place it was fetched from (lib.lua
-- make_pending), with its attempt undone.
--
-- KEYS[1] active zset  KEYS[2] pending zset  KEYS[3] seq counter
-- KEYS[4] job hash prefix
-- KEYS[5] wake channel (optional): told the job is due now
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[4],
--   under the same {queue} hash tag
-- ARGV[1] id  ARGV[2] lease token
-- Returns 1 released, 0 not found, -1 lease lost (nothing changed). The
--   attempt is added to the job's history as handed back (lib.lua).

local id = ARGV[1]
local job_key = KEYS[4] .. id
local code = check_lease(KEYS[4], id, ARGV[2])
if code ~= 1 then
  return code
end
redis.call('ZREM', KEYS[1], id)
record_active(KEYS[4], id, clock(), 'handed_back')
if tonumber(redis.call('HGET', job_key, 'a')) > 0 then
  redis.call('HINCRBY', job_key, 'a', -1)
end
make_pending(KEYS[2], KEYS[3], job_key, id, true)
if KEYS[5] then
  redis.call('PUBLISH', KEYS[5], '0')
end
return 1
