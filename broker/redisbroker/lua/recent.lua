-- recent.lua counts the jobs of a finished-state zset (the queue's or a
-- tenant's index zset) that finished within a window ending now on the
-- Redis clock: QueueStats.CompletedLastMinute. Finished-state zsets are
-- scored by finish time in unix microseconds (lib.lua), so this is one
-- ZCOUNT of a score range.
--
-- KEYS[1] finished-state zset
-- ARGV[1] window in microseconds
-- Returns the count.

local _, now_us = clock()
return redis.call('ZCOUNT', KEYS[1], fmt(now_us - tonumber(ARGV[1])), '+inf')
