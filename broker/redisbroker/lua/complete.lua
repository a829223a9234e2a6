-- complete.lua moves a batch of active jobs of one queue to completed.
--
-- KEYS[1] active zset  KEYS[2] completed zset  KEYS[3] job hash prefix
-- KEYS[4] unique-key prefix
-- ARGV[1] number of jobs n, then n triples: id, lease token, result JSON ('' for none)
-- Returns one code per job: 1 completed, 0 not found, -1 lease lost (unchanged).

local now, now_us = clock()
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local b = 1 + (i - 1) * 3
  local id = ARGV[b + 1]
  local job_key = KEYS[3] .. id
  local code = check_lease(job_key, ARGV[b + 2])
  if code == 1 then
    -- i keeps the batch's order among jobs finished in the same microsecond.
    finish(KEYS[1], KEYS[2], 'completed', job_key, id, KEYS[4], now, now_us + i - 1)
    if ARGV[b + 3] ~= '' then
      redis.call('HSET', job_key, 'res', ARGV[b + 3])
    else
      redis.call('HDEL', job_key, 'res')
    end
  end
  out[i] = code
end
return out
