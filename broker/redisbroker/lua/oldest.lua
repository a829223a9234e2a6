-- oldest.lua finds when the longest-waiting pending job became due. Pending
-- is ordered by priority, then FIFO, so it reads the job first in line of
-- each priority present (one O(log n) jump per priority, at most 1000) and
-- returns the smallest RunAt among them. A job behind a later-due one of
-- its priority (a retry or delayed job promoted after jobs enqueued later)
-- is not seen until it reaches the head; recovered and handed-back jobs go
-- back to their place, so they are not such jobs.
--
-- KEYS[1] pending zset  KEYS[2] job hash prefix
-- ARGV none
-- Returns the RunAt in unix milliseconds, or -1 when nothing is pending.

local best = -1
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
while head[1] do
  local band = math.floor(tonumber(head[2]) / PRIORITY_SHIFT)
  local r = redis.call('HGET', KEYS[2] .. head[1], 'r')
  if not r then -- only a body: due since it was created
    r = body_head(redis.call('HGET', body_key(KEYS[2]), head[1]) or '')
  end
  r = tonumber(r or '-1')
  if r and r >= 0 and (best < 0 or r < best) then
    best = r
  end
  head = redis.call('ZRANGEBYSCORE', KEYS[1], fmt((band + 1) * PRIORITY_SHIFT), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
end
return best
