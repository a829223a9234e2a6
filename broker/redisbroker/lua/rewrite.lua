-- rewrite.lua rewrites a job's stored values in place, each only if it
-- still holds what the caller read (broker.JobRewriter): its data (the
-- state hash's 'd' when it has one, else the tail of its body), result
-- 'res', progress 'pg', last error 'le', and the errors of entries of its
-- attempt history. Nothing else of the job changes.
--
-- KEYS[1] job hash prefix (body hash and history derived from it, lib.lua)
-- ARGV[1] id
-- ARGV[2..9] old and new data, result, progress, last error ('' old: leave
--   that value as it is)
-- ARGV[10..] triples: history position (0 the oldest kept), old error, new
--   error
-- Returns 1 rewritten, 0 no such job, -2 a value is not its old one or a
--   position is not in the history (nothing written).

local prefix, id = KEYS[1], ARGV[1]
if not job_state(prefix, id) then
  return 0
end
local job_key = prefix .. id
local sets = {}

if ARGV[2] ~= '' then
  local d = redis.call('HGET', job_key, 'd')
  if d then
    if d ~= ARGV[2] then
      return -2
    end
    sets[#sets + 1] = {'hash', 'd', ARGV[3]}
  else
    local body = redis.call('HGET', body_key(prefix), id) or ''
    local lt, ltn, lco, lh, rest = string.match(body, '^%d+|%d+|%-?%d+|%d+|(%d+)|(%d+)|(%d+)|(%d+)|()')
    if not rest then
      return -2
    end
    local at = rest + tonumber(lt) + tonumber(ltn) + tonumber(lco) + tonumber(lh)
    if string.sub(body, at) ~= ARGV[2] then
      return -2
    end
    sets[#sets + 1] = {'body', string.sub(body, 1, at - 1) .. ARGV[3]}
  end
end

local fields = {'res', 'pg', 'le'}
for i, f in ipairs(fields) do
  local old = ARGV[2 + 2 * i]
  if old ~= '' then
    if redis.call('HGET', job_key, f) ~= old then
      return -2
    end
    sets[#sets + 1] = {'hash', f, ARGV[3 + 2 * i]}
  end
end

local hkey = hist_key(prefix, id)
for i = 10, #ARGV, 3 do
  local pos = tonumber(ARGV[i])
  local entry = redis.call('LINDEX', hkey, pos)
  local tail = ',' .. cjson.encode(ARGV[i + 1]) .. ']'
  if not entry or string.sub(entry, -#tail) ~= tail then
    return -2
  end
  sets[#sets + 1] = {'hist', pos, string.sub(entry, 1, -#tail - 1) .. ',' .. cjson.encode(ARGV[i + 2]) .. ']'}
end

for _, s in ipairs(sets) do
  if s[1] == 'hash' then
    redis.call('HSET', job_key, s[2], s[3])
  elseif s[1] == 'body' then
    redis.call('HSET', body_key(prefix), id, s[2])
  else
    redis.call('LSET', hkey, s[2], s[3])
  end
end
return 1
