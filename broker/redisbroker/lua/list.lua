-- list.lua reads one page of a state's zset, optionally filtered by tenant
-- and type. It writes nothing.
--
-- KEYS[1] the state's zset  KEYS[2] job hash prefix
-- ARGV[1] offset  ARGV[2] limit  ARGV[3] '1' for newest (highest score) first
-- ARGV[4] tenant filter ('' for any)  ARGV[5] type filter ('' for any)
-- Returns {next offset (-1 at the end), job_1, ..., job_k}, each job the flat
--   HGETALL array of its hash. Offsets count filtered jobs.

local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local rev = ARGV[3] == '1'
local tenant, typ = ARGV[4], ARGV[5]
local function range(start, stop)
  if rev then
    return redis.call('ZREVRANGE', KEYS[1], start, stop)
  end
  return redis.call('ZRANGE', KEYS[1], start, stop)
end

local out = {-1}
if tenant == '' and typ == '' then
  local ids = range(offset, offset + limit)
  for i = 1, math.min(#ids, limit) do
    out[#out + 1] = redis.call('HGETALL', KEYS[2] .. ids[i])
  end
  if #ids > limit then
    out[1] = offset + limit
  end
  return out
end

local matched, pos, chunk = 0, 0, 500
while true do
  local ids = range(pos, pos + chunk - 1)
  for _, id in ipairs(ids) do
    local v = redis.call('HMGET', KEYS[2] .. id, 'tn', 't')
    if (tenant == '' or v[1] == tenant) and (typ == '' or v[2] == typ) then
      if matched >= offset + limit then
        out[1] = offset + limit
        return out
      end
      if matched >= offset then
        out[#out + 1] = redis.call('HGETALL', KEYS[2] .. id)
      end
      matched = matched + 1
    end
  end
  if #ids < chunk then
    return out
  end
  pos = pos + chunk
end
