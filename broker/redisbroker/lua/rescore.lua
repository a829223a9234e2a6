-- rescore.lua gives pending jobs of a queue their stored-format 4 scores
-- (priority 1 first): priority * 2^40 + seq, with the priority the job
-- stores (state hash, else body) and the seq its old score holds, in the
-- pending zset and in its tenant's pending index. Formats before 4 scored
-- (1000 - priority) * 2^40 + seq. Idempotent: a job rescored before gets
-- the same score again.
--
-- KEYS[1] pending zset  KEYS[2] job hash prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[2],
--   under the same {queue} hash tag
-- ARGV the ids of the jobs to rescore (ids no longer pending are skipped)
-- Returns the number of jobs rescored.

local n = 0
for _, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score then
    score = tonumber(score)
    local seq = score - math.floor(score / PRIORITY_SHIFT) * PRIORITY_SHIFT
    local v = redis.call('HMGET', KEYS[2] .. id, 'p', 'tn')
    local p = stored_priority(job_number(KEYS[2], id, 'p', v[1]) or DEFAULT_PRIORITY)
    local tn = v[2]
    if not tn then
      local body = redis.call('HGET', body_key(KEYS[2]), id) or ''
      if body ~= '' then
        tn = body_tenant(body)
      end
    end
    local new = fmt(p * PRIORITY_SHIFT + seq)
    redis.call('ZADD', KEYS[1], new, id)
    tindex_move(KEYS[2], tn, id, nil, 'pending', new)
    n = n + 1
  end
end
return n
