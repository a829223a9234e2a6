-- progress.lua stores the progress an active job reports.
--
-- KEYS[1] job hash prefix
-- ARGV[1] id  ARGV[2] lease token  ARGV[3] progress JSON ('' clears it)
-- Returns 1 stored, 0 not found, -1 lease lost (nothing changed).

local job_key = KEYS[1] .. ARGV[1]
local code = check_lease(KEYS[1], ARGV[1], ARGV[2])
if code ~= 1 then
  return code
end
if ARGV[3] ~= '' then
  redis.call('HSET', job_key, 'pg', ARGV[3])
else
  redis.call('HDEL', job_key, 'pg')
end
return 1
