-- nextdue.lua tells idle workers (JobWait) when each queue's earliest
-- scheduled job falls due, by the Redis clock.
--
-- KEYS[1] the queue's scheduled zset  KEYS[2] its paused flag
-- ARGV none
-- Returns {has, ms}: has is 1 when the queue has a scheduled job and is not
--   paused, and ms the milliseconds until the earliest is due (<= 0: now).

if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, 0}
end
local now = clock()
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  return {1, tonumber(first[2]) - now}
end
return {0, 0}
