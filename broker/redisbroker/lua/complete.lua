-- complete.lua moves a batch of active jobs of one queue to completed, or
-- removes them whole when they were inserted with DeleteOnComplete (state
-- hash field dc) or their completion says delete. With a completed max count
-- it then removes the queue's oldest completed jobs beyond it (at most 1000
-- per call; QueueMaintain removes any rest), so the completed set, and
-- Redis memory, stay flat under any completion rate.
--
-- KEYS[1] active zset  KEYS[2] completed zset  KEYS[3] job hash prefix
-- KEYS[4] unique-key prefix  KEYS[5] ttl zset
-- Tenant index zsets, the body hash and the lease and done hashes (lib.lua)
--   are not in KEYS: they are derived from KEYS[3], under the same {queue}
--   hash tag
-- ARGV[1] number of jobs n  ARGV[2] completed max count (0: no limit)
-- ARGV[3] values per job, 2 or 4; then n pairs: id, lease token (no result,
--   keep the job: the common acknowledgement, half the arguments to send and
--   convert), or n quadruples: id, lease token, result JSON ('' for none),
--   delete ('1' to remove the job whole, else '0')
-- Returns one code per job: 1 completed (or removed), 0 not found, -1 lease
--   lost (unchanged). A completed job's state hash keeps its last attempt,
--   marked as the end of its history (lib.lua); a removed job's history
--   goes with it.

local now, now_us = clock()
local out = {}
-- A job leased with no state hash (lib.lua: lease entry) costs no command
-- of its own: one HMGET reads the batch's lease entries, and its outcome
-- is a done entry written with the batch's (a result needs the state hash:
-- one HSET). A job with a state hash costs one HMGET and one HSET (or one
-- DEL). The active, completed and ttl sets, the body, lease and done hashes
-- and the tenant indexes are written once for the whole batch.
local ids, done, gone = {}, {}, {}
local moved, dropped = {}, {} -- tenant index moves and removals, per tenant
local finished = int(now)
local stride = tonumber(ARGV[3])
local n = tonumber(ARGV[1])
local lease_hash = lease_key(KEYS[3])
local entries
if n == 1 then
  -- The common acknowledgement of one job: no table of names, nor a copy
  -- of the reply.
  entries = redis.call('HMGET', lease_hash, ARGV[4])
else
  local names = {}
  entries = {}
  for i = 1, n do
    names[i] = ARGV[4 + (i - 1) * stride]
  end
  for c = 1, n, 1000 do
    local got = redis.call('HMGET', lease_hash, unpack(names, c, math.min(c + 999, n)))
    for k = 1, #got do
      entries[c + k - 1] = got[k]
    end
  end
end
local ended, outcomes = {}, {} -- lease entries to remove, done entries to write
for i = 1, n do
  local b = 3 + (i - 1) * stride
  local id = ARGV[b + 1]
  local res, del = '', '0'
  if stride == 4 then
    res, del = ARGV[b + 3], ARGV[b + 4]
  end
  local job_key
  local e = entries[i]
  local code = 1
  if e then
    -- A lease entry's finish is empty: cut is where it goes. A position
    -- rather than the fields entry_fields copies out (a Lua string each):
    -- the place and start are not needed, and the tenant mostly absent.
    local tk, cut = string.match(e, '^(%d+)|%d+|%d+|()|')
    local tn = tk and entry_tenant_at(e, cut + 1)
    if tk ~= ARGV[b + 2] or ended[id] then -- ended: twice in this batch
      code = -1
    else
      ids[#ids + 1] = id
      ended[#ended + 1] = id
      ended[id] = true
      if del == '1' then
        gone[#gone + 1] = id
        if tn ~= '' then
          tindex_group(dropped, tn, id, 0)
        end
      else
        local score = int(now_us + i - 1)
        done[#done + 1] = score
        done[#done + 1] = id
        if tn ~= '' then
          tindex_group(moved, tn, id, score)
        end
        -- The lease entry with its finish filled in.
        local outcome = string.sub(e, 1, cut - 1) .. finished .. string.sub(e, cut)
        if res ~= '' then -- a result needs the state hash
          local h = entry_state(outcome, 'completed')
          h[#h + 1], h[#h + 2] = 'res', res
          redis.call('HSET', KEYS[3] .. id, unpack(h))
        else
          outcomes[#outcomes + 1] = id
          outcomes[#outcomes + 1] = outcome
        end
      end
    end
    out[i] = code
  else
    job_key = KEYS[3] .. id
    local v = redis.call('HMGET', job_key, 's', 'tk', 'u', 'tn', 'dc')
    if not v[1] then
      code = 0
      if redis.call('HEXISTS', body_key(KEYS[3]), id) == 1 then
        code = -1 -- pending with only a body, or completed (a done entry)
      end
    elseif v[1] ~= 'active' or v[2] ~= ARGV[b + 2] then
      code = -1
    end
    if code == 1 then
      ids[#ids + 1] = id
      local u = v[3]
      if u and u ~= '' and redis.call('GET', KEYS[4] .. u) == id then
        redis.call('DEL', KEYS[4] .. u)
      end
      if del == '1' or v[5] == '1' then
        gone[#gone + 1] = id
        if v[4] then -- a tenant's job (lib.lua)
          tindex_group(dropped, v[4], id, 0)
        end
        redis.call('DEL', job_key, hist_key(KEYS[3], id))
      else
        -- i keeps the batch's order among jobs finished in the same
        -- microsecond. Rendered once with int: a Lua number would be printed
        -- by Redis, at twice the cost, for each ZADD it is given to.
        local score = int(now_us + i - 1)
        done[#done + 1] = score
        done[#done + 1] = id
        if v[4] then
          tindex_group(moved, v[4], id, score)
        end
        -- One HSET: 'lu' stays (readers ignore it unless the job is active)
        -- and an active job has no 'res' to clear (only completion sets it).
        -- 'la': the attempt just ended is the history's last (lib.lua).
        if res ~= '' then
          redis.call('HSET', job_key, 's', 'completed', 'f', finished, 'la', '1', 'res', res)
        else
          redis.call('HSET', job_key, 's', 'completed', 'f', finished, 'la', '1')
        end
      end
    end
    out[i] = code
  end
end
for c = 1, #ended, 1000 do
  redis.call('HDEL', lease_hash, unpack(ended, c, math.min(c + 999, #ended)))
end
for c = 1, #outcomes, 1000 do
  redis.call('HSET', done_key(KEYS[3]), unpack(outcomes, c, math.min(c + 999, #outcomes)))
end
-- In chunks: unpack is bounded by Lua's stack.
for c = 1, #ids, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ids, c, math.min(c + 999, #ids)))
end
for c = 1, #done, 1000 do
  redis.call('ZADD', KEYS[2], unpack(done, c, math.min(c + 999, #done)))
end
for c = 1, #gone, 1000 do
  local last = math.min(c + 999, #gone)
  redis.call('ZREM', KEYS[5], unpack(gone, c, last))
  redis.call('HDEL', body_key(KEYS[3]), unpack(gone, c, last))
end
tindex_flush(KEYS[3], moved, 'active', 'completed')
tindex_flush(KEYS[3], dropped, 'active', nil)
local keep = tonumber(ARGV[2])
if keep > 0 and #done > 0 then
  -- Trimming waits for 100 jobs of excess, so that its fixed cost (six
  -- commands) is shared by many removals rather than paid per batch.
  local excess = redis.call('ZCARD', KEYS[2]) - keep
  if excess >= 100 then
    remove_finished(KEYS[2], KEYS[5], KEYS[3], redis.call('ZRANGE', KEYS[2], 0, math.min(excess, 1000) - 1), 'completed')
  end
end
return out
