-- mark.lua lets a broker notice that a queue's data was lost or rolled back
-- under it (dataloss.go). It runs in the same round trip as the broker's
-- inserts and fetches. The queue's epoch is a random id written when the
-- queue is first used and replaced when data loss is detected; the broker's
-- write marker holds the number of its latest call, so a marker below a
-- number the broker already had confirmed means Redis lost that write.
--
-- KEYS[1] epoch  KEYS[2] this broker's write marker
-- ARGV[1] a fresh random id: the epoch if the queue has none, or if the
--   epoch still is ARGV[4]
-- ARGV[2] this call's number  ARGV[3] marker lifetime in seconds
-- ARGV[4] optional: the epoch to replace (a rollback was detected)
-- Returns {epoch, 1 if ARGV[1] became the epoch here else 0, the marker
--   before this call (0: none)}.

local epoch = redis.call('GET', KEYS[1])
local created = 0
if not epoch or (ARGV[4] and epoch == ARGV[4]) then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  created = 1
end
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) > before then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
end
return {epoch, created, before}
