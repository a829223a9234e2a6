-- fair_set.lua replaces a queue's fair policy (lib.lua has the layout of
-- its hash). Turning fairness on records the seq counter as the tags'
-- base, so jobs placed by the counter before keep their turn; turning it
-- off moves the counter past every tag handed out, so jobs placed by it
-- after do not overtake jobs tagged before.
--
-- KEYS[1] fair policy hash  KEYS[2] seq counter  KEYS[3] fair tag hash
-- ARGV[1] '1' fair on, '0' off  ARGV[2] the default cap (0: none)
-- ARGV[3] the default tenant rate limit ('' none; lib.lua's form)
-- ARGV[4] the number m of job type rate limits, then m pairs: type, limit
-- then quadruples: tenant, weight (1..1000), cap (0: the default), rate
--   limit ('': the default)
-- Rate limits' state (the rate hash) is kept: a changed limit applies from
-- the state the old one left.
-- Returns 1.

local was = redis.call('HGET', KEYS[1], 'on')
local base = redis.call('HGET', KEYS[1], 'base')
redis.call('DEL', KEYS[1])
local f = {'on', ARGV[1], 'cap', ARGV[2]}
local anycap = tonumber(ARGV[2]) > 0
local anyrate = ARGV[3] ~= ''
if anyrate then
  f[#f + 1] = 'rt'
  f[#f + 1] = ARGV[3]
end
local m = tonumber(ARGV[4])
for i = 5, 4 + 2 * m, 2 do
  anyrate = true
  f[#f + 1] = 'y:' .. ARGV[i]
  f[#f + 1] = ARGV[i + 1]
  if #f >= 1000 then
    redis.call('HSET', KEYS[1], unpack(f))
    f = {}
  end
end
if ARGV[1] == '1' then
  if was ~= '1' then
    base = redis.call('GET', KEYS[2])
  end
  if base then
    f[#f + 1] = 'base'
    f[#f + 1] = base
  end
elseif was == '1' then
  local top = tonumber(redis.call('GET', KEYS[2]) or '0')
  local vals = redis.call('HVALS', KEYS[3])
  for _, v in ipairs(vals) do
    top = math.max(top, tonumber(v))
  end
  redis.call('SET', KEYS[2], fmt(top))
end
for i = 5 + 2 * m, #ARGV, 4 do
  local tn, w, cap = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if ARGV[i + 3] ~= '' then
    anyrate = true
    f[#f + 1] = 'r:' .. tn
    f[#f + 1] = ARGV[i + 3]
  end
  if w ~= '1' then
    f[#f + 1] = 'w:' .. tn
    f[#f + 1] = w
  end
  if cap > 0 then
    anycap = true
    f[#f + 1] = 'c:' .. tn
    f[#f + 1] = ARGV[i + 2]
  end
  if #f >= 1000 then
    redis.call('HSET', KEYS[1], unpack(f))
    f = {}
  end
end
if anycap then
  f[#f + 1] = 'anycap'
  f[#f + 1] = '1'
end
if anyrate then
  f[#f + 1] = 'anyrate'
  f[#f + 1] = '1'
end
if #f > 0 then
  redis.call('HSET', KEYS[1], unpack(f))
end
return 1
