-- nextdue.lua tells idle workers (JobWait) when each queue's earliest
-- scheduled job falls due, by the Redis clock.
--
-- KEYS[1] the queue's scheduled zset
-- ARGV none
-- Returns {has, ms}: has is 1 when the queue has a scheduled job, and ms the
--   milliseconds until the earliest is due (<= 0: due now).

local now = clock()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  return {1, tonumber(first[2]) - now}
end
return {0, 0}
