-- leader_release.lua gives a named lease up if the caller holds it.
--
-- KEYS[1] the lease key
-- ARGV[1] holder
-- Returns 1 when the lease was released, 0 when the caller did not hold it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
