-- list.lua reads one page of a state's zset, optionally filtered by tenant
-- and type. It writes nothing. A tenant's listing is given its index zset
-- of the state (lib.lua) as KEYS[1] and no tenant filter: one ZRANGE of the
-- page, unless filtered by type too.
--
-- KEYS[1] the state's zset, or a tenant's index zset of the state
-- KEYS[2] job hash prefix
-- ARGV[1] offset  ARGV[2] limit  ARGV[3] '1' for newest (highest score) first
-- ARGV[4] tenant filter ('' for any)  ARGV[5] type filter ('' for any)
-- ARGV[6] scan budget, ARGV[7] raw start position, ARGV[8] matches so far
--   (filtered listings only; see below)
-- ARGV[9] cursor score, ARGV[10] cursor id: with ARGV[11] '1', the page
--   (or, filtered, the scan) starts right after the entry (score, id) in
--   the zset's order, whether or not that entry is still there; offset
--   and raw start position are then 0
-- Returns, unfiltered: {next offset (-1 at the end), score of the last
--   job, job_1, ..., job_k};
--   filtered: {next offset (-1 at the end), raw position to continue from
--   (-1 when this call finished the page), matches so far, score of the
--   last job ('' if none), job_1, ...}.
--   Each job as lib.lua describes. Offsets count filtered jobs.

local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local rev = ARGV[3] == '1'
local tenant, typ = ARGV[4], ARGV[5]
local function range(start, stop)
  if rev then
    return redis.call('ZREVRANGE', KEYS[1], start, stop)
  end
  return redis.call('ZRANGE', KEYS[1], start, stop)
end

-- before compares members as the zset orders them, byte by byte (Lua's
-- own < follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- after_cursor returns the range position (in range's direction) of the
-- first entry past the cursor: the entries of the cursor's score are
-- searched by halves for the id's place, O(log n) each probe.
local function after_cursor(score, id)
  local lo = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. score)
  local hi = redis.call('ZCOUNT', KEYS[1], '-inf', score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(redis.call('ZRANGE', KEYS[1], mid, mid)[1], id) then
      lo = mid + 1
    else
      hi = mid
    end
  end
  -- lo entries come before the cursor
  if rev then
    return redis.call('ZCARD', KEYS[1]) - lo
  end
  if redis.call('ZSCORE', KEYS[1], id) == score then
    return lo + 1
  end
  return lo
end

-- score_of returns the score of the last of ids ('' if none).
local function score_of(ids, n)
  if n == 0 then
    return ''
  end
  return redis.call('ZSCORE', KEYS[1], ids[n])
end

local start = offset
if ARGV[11] == '1' then
  start = after_cursor(ARGV[9], ARGV[10])
end
local out = {-1}
if tenant == '' and typ == '' then
  local ids = range(start, start + limit)
  local n = math.min(#ids, limit)
  out[2] = score_of(ids, n)
  for i = 1, n do
    out[#out + 1] = read_job(KEYS[2], ids[i])
  end
  if #ids > limit then
    out[1] = offset + limit
  end
  return out
end

-- A filtered listing scans at most ARGV[6] entries per call, from raw
-- position ARGV[7] with ARGV[8] matches already counted, so that one call
-- never blocks Redis for long; the caller calls again with the position
-- returned until the page is complete.
local budget, pos, matched = tonumber(ARGV[6]), tonumber(ARGV[7]) + start - offset, tonumber(ARGV[8])
local bodies = body_key(KEYS[2])
local stop = pos + budget
local chunk = 500
out = {-1, -1, 0, ''}
while pos < stop do
  local ids = range(pos, math.min(pos + chunk, stop) - 1)
  for n, id in ipairs(ids) do
    local body = redis.call('HGET', bodies, id)
    local tn, t
    if body and body ~= '' then
      tn, t = body_tenant_type(body)
    else
      local v = redis.call('HMGET', KEYS[2] .. id, 'tn', 't')
      tn, t = v[1], v[2]
    end
    if (tenant == '' or tn == tenant) and (typ == '' or t == typ) then
      if matched >= offset + limit then
        out[1], out[2], out[3] = offset + limit, -1, matched
        return out
      end
      if matched >= offset then
        out[#out + 1] = read_job(KEYS[2], id)
        out[4] = redis.call('ZSCORE', KEYS[1], id)
      end
      matched = matched + 1
    end
  end
  if #ids < math.min(chunk, stop - pos) then
    out[3] = matched
    return out -- the state's set is exhausted: the last page
  end
  pos = pos + #ids
end
out[2], out[3] = pos, matched -- budget spent: continue from pos
return out
