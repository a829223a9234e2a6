-- fail.lua records a failed attempt of an active job: back to scheduled if
-- attempts are left and the failure is not discarded, else dead.
--
-- KEYS[1] active zset  KEYS[2] scheduled zset  KEYS[3] dead zset
-- KEYS[4] job hash prefix  KEYS[5] unique-key prefix
-- KEYS[6] wake channel (optional): told the retry's delay, so idle
--   Managers arm a timer for it instead of waiting for their next poll
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[4],
--   under the same {queue} hash tag
-- ARGV[1] id  ARGV[2] lease token  ARGV[3] error text  ARGV[4] retry delay ms
-- ARGV[5] '1' to discard (dead whatever attempts are left)
-- ARGV[6] max attempts override: when > 0, replaces and is stored as the
--   job's max attempts before deciding
-- ARGV[7] headers JSON object merged into the job's ('' for none)
-- Returns {code, state}: code 1 done (state is the new state), 0 not found,
--   -1 lease lost (nothing changed).

local id = ARGV[1]
local job_key = KEYS[4] .. id
local code = check_lease(KEYS[4], id, ARGV[2])
if code ~= 1 then
  return {code, ''}
end
local now, now_us = clock()
if retry_attempt(KEYS[1], KEYS[2], job_key, id, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], now) then
  if KEYS[6] then
    redis.call('PUBLISH', KEYS[6], ARGV[4])
  end
  return {1, 'scheduled'}
end
finish(KEYS[1], KEYS[3], 'dead', job_key, id, KEYS[5], now, now_us)
return {1, 'dead'}
