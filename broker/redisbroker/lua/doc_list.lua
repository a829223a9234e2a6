-- doc_list.lua reads one page of a document index with the documents it
-- names, at one instant.
--
-- KEYS[1] the index zset (<prefix>:{queue}:x:<kind>:<name>)
-- KEYS[2] the document prefix of the same kind (<prefix>:{queue}:d:<kind>:);
--   a document is KEYS[2] .. key, under the same hash tag
-- ARGV[1] min score or '-inf'  ARGV[2] max score or '+inf'
-- ARGV[3] '1' for descending order  ARGV[4] offset  ARGV[5] limit
-- Returns {now ms, entries within min..max, then per document: key,
--   version, body}.

local now = clock()
local keys
if ARGV[3] == '1' then
  keys = redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[1], 'BYSCORE', 'REV', 'LIMIT', ARGV[4], ARGV[5])
else
  keys = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYSCORE', 'LIMIT', ARGV[4], ARGV[5])
end
local out = {fmt(now), redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[2])}
for _, key in ipairs(keys) do
  local v = redis.call('HMGET', KEYS[2] .. key, 'v', 'b')
  if v[1] then
    out[#out + 1] = key
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
  end
end
return out
