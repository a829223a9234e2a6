-- tenant_reindex.lua builds the tenant index (lib.lua) of one slice of a
-- state's zset, for data written before it existed (stored format 2): each
-- job with a tenant gets its entry in the tenant's zset of the state, with
-- the job's score, and 'tn' in its state hash if it has one (lib.lua).
-- Idempotent.
--
-- KEYS[1] the state's zset  KEYS[2] job hash prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[2],
--   under the same {queue} hash tag
-- ARGV[1] the state  ARGV[2] first rank of the slice  ARGV[3] slice size
-- Returns the first rank of the next slice, or -1 after the last.

local start, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local entries = redis.call('ZRANGE', KEYS[1], start, start + size - 1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local id = entries[i]
  local tn = job_tenant(KEYS[2], id)
  if tn ~= '' then
    if redis.call('EXISTS', KEYS[2] .. id) == 1 then
      redis.call('HSET', KEYS[2] .. id, 'tn', tn)
    end
    tindex_move(KEYS[2], tn, id, nil, ARGV[1], entries[i + 1])
  end
end
if #entries < 2 * size then
  return -1
end
return start + size
