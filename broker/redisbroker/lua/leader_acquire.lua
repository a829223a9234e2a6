-- leader_acquire.lua takes a named lease, or extends it for its holder.
-- The expiry is Redis's own (PX), so no worker clock is involved.
--
-- KEYS[1] the lease key
-- ARGV[1] holder  ARGV[2] ttl (ms)
-- Returns 1 when ARGV[1] holds the lease now, 0 when another holder does.

local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
