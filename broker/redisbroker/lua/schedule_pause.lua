-- schedule_pause.lua sets or clears a schedule's paused flag.
--
-- KEYS[1] the schedule's claim hash
-- ARGV[1] '1' to pause, '0' to resume
-- Returns 1, or 0 if the schedule does not exist (nothing is written).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
return 1
