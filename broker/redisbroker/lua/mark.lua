-- mark.lua reads what a broker needs to notice that a queue's data was lost
-- or rolled back (dataloss.go): the queue's epoch, a random id written when
-- the queue is first used and replaced when data loss is detected, and its
-- two counters, which only ever grow while Redis keeps its data.
--
-- KEYS[1] epoch  KEYS[2] seq counter  KEYS[3] lease counter
-- ARGV[1] a fresh random id: the epoch if the queue has none, or if it
--   still is ARGV[2]
-- ARGV[2] optional: the epoch to replace (after a rollback was detected)
-- Returns {epoch, 1 if ARGV[1] became the epoch here else 0, seq, leases}.

local epoch = redis.call('GET', KEYS[1])
local created = 0
if not epoch or (ARGV[2] and epoch == ARGV[2]) then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  created = 1
end
return {epoch, created, tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(redis.call('GET', KEYS[3]) or '0')}
