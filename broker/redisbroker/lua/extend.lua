-- extend.lua extends the leases of a batch of active jobs of one queue.
--
-- KEYS[1] active zset  KEYS[2] job hash prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[2],
--   under the same {queue} hash tag
-- ARGV[1] lease duration ms  ARGV[2] number of jobs n, then n pairs: id, lease token
-- Returns one code per job: 1 extended, 0 not found, -1 lease lost (unchanged).

local now = clock()
local lease_until = fmt(now + tonumber(ARGV[1]))
local out = {}
for i = 1, tonumber(ARGV[2]) do
  local b = 2 + (i - 1) * 2
  local id = ARGV[b + 1]
  local job_key = KEYS[2] .. id
  local code, tn = check_lease(KEYS[2], id, ARGV[b + 2])
  if code == 1 then
    redis.call('HSET', job_key, 'lu', lease_until)
    redis.call('ZADD', KEYS[1], lease_until, id)
    tindex_move(KEYS[2], tn, id, nil, 'active', lease_until)
  end
  out[i] = code
end
return out
