-- fetch.lua leases up to ARGV[1] jobs of a queue, lowest priority number
-- (most urgent) first, FIFO among equals. Due scheduled jobs are promoted
-- first; pending jobs past their ExpiresAt move to expired instead of being
-- leased.
--
-- KEYS[1] scheduled zset  KEYS[2] pending zset  KEYS[3] active zset
-- KEYS[4] expired zset    KEYS[5] paused flag   KEYS[6] seq counter
-- KEYS[7] token counter   KEYS[8] ttl zset      KEYS[9] job hash prefix
-- KEYS[10] unique-key prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[9],
--   under the same {queue} hash tag
-- The queue's fair policy and tag hashes (lib.lua) are not in KEYS either:
--   they are derived from KEYS[6]
-- ARGV[1] limit  ARGV[2] lease duration ms  ARGV[3] worker id
-- Returns {'paused'} | {'ok', started ms, lease until ms, then three values
--   per job}: id, body, flat HGETALL of its state hash read after the lease
--   was taken (lib.lua), or, for a job that had no state hash (and now has
--   a lease entry), id, body, lease token: active, attempt 1, started,
--   leased until, by worker ARGV[3]. Flat, not a table per job: one table less to build, and to
--   turn into a reply, per job.
--
-- Lease tokens: KEYS[7] holds the last token issued, and a token is never
-- below the Redis clock in microseconds: a Redis restored from an older
-- snapshot, or a replica that lost the last writes, hands out tokens above
-- every token issued before (the clock moved on; tokens are issued far
-- slower than one per microsecond), so a lease taken before the rollback
-- cannot complete a job leased again after it. Each fetched job records
-- its place (its seq, 'q') so that recovery and hand-back put it back there
-- (lib.lua make_pending).
--
-- Tenant caps (broker/fair.go): a job whose tenant already has its cap of
-- jobs active (its tenant index of active jobs, plus those this call took)
-- is popped, left out and put back with its score after the loop, so the
-- jobs behind it are fetched; the budget bounds how many one call looks
-- past. In a fair queue the call records, per priority, the highest tag it
-- fetched (v:<p>), and restarts the tags when no job is left pending.
-- A paused tenant's jobs are held back the same way.
-- Rate limits (GCRA, broker.Rate.Admit's twin, on the Redis clock in µs)
-- hold jobs back the same way; a job takes its limits' turns only once all
-- of them, and its tenant's cap, let it start.

local fcfg, ftp = policy_keys(KEYS[6])
local fst, frl -- the fair tags and rate state: named only with a policy
-- One EXISTS over the paused flag, the fair policy and the paused tenants
-- tells a plain queue (none of them: the common case) from one with a
-- policy, whose fetch reads them one by one.
local policy = redis.call('EXISTS', KEYS[5], fcfg, ftp) > 0
if policy and redis.call('EXISTS', KEYS[5]) == 1 then
  return {'paused'}
end
local now, now_us = clock()
promote(KEYS[1], KEYS[2], KEYS[6], KEYS[9], now, '1000')

local want = tonumber(ARGV[1])
local lease_until = int(now + tonumber(ARGV[2]))
local now_s = int(now)
local out = {'ok', now_s, lease_until}
local got = 0
local budget = want + 1000 -- bounds the expired jobs one call skips over
-- A job that had a state hash before costs one HMGET and one HSET, and is
-- read back with HGETALL; one that had only a body costs no command of its
-- own: its lease entry (lib.lua) is written with the pop's, and it is
-- returned as {id, body, token}. Per pop: one HMGET of the bodies, one
-- EXISTS of the state hashes, one GET and SET reserving the tokens, one
-- ZADD of the active set, one HSET of the lease entries.
local bodies = body_key(KEYS[9])
local lease_hash = lease_key(KEYS[9])
-- What every lease entry of this call holds between its place and its
-- tenant: started, no finish, the worker.
local lease_mid = '|' .. now_s .. '||' .. #ARGV[3] .. '|' .. ARGV[3]
local moved = nil -- tenant index moves, pending to active, per tenant (made at the first)
-- A plain queue (no policy) makes none of the tables and closures below:
-- each is an allocation, and garbage to collect, per call.
local fair, capped, rated, tpaused = false, false, false, false
local admit -- decides whether a job may start (policy only)
local skipped = nil -- jobs left pending for their tenant's cap or a rate: score, id
local tags = nil    -- fair: the highest tag fetched, per priority
local tats = nil    -- GCRA state per rate field, as this call changed it
if policy then
  local _
  _, fst, frl = fair_keys(KEYS[6])
  tpaused = redis.call('EXISTS', ftp) == 1
  local held = {}    -- paused tenants (true) and not paused ones (false)
  local fc = redis.call('HMGET', fcfg, 'on', 'anycap', 'cap', 'anyrate', 'rt')
  fair, capped, rated = fc[1] == '1', fc[2] == '1', fc[4] == '1'
  local defcap, defrate = tonumber(fc[3] or '0'), fc[5]
  local room = {}    -- capped tenants: slots left
  skipped, tags, tats = {}, {}, {}
  local tbase = string.sub(KEYS[9], 1, -3) .. 't:active:'
  local specs = {}   -- rate limit per field of the rate hash ('' for none)
  -- turn returns the tat rate field f stores once one more job starts, or
  -- nil if its limit lets none start now (false: no limit).
  local function turn(f, spec)
    if spec == nil then
      spec = redis.call('HGET', fcfg, 'r:' .. string.sub(f, 3)) or defrate or ''
      specs[f] = spec
    end
    if spec == '' then
      return false
    end
    local limit, period = string.match(spec, '^(%d+)|(%d+)$')
    local t = tonumber(period) / tonumber(limit)
    local tat = tats[f] or tonumber(redis.call('HGET', frl, f) or '0')
    tat = math.max(tat, now_us)
    if tat - now_us > tonumber(period) - t then
      return nil
    end
    return math.floor(tat + t + 0.5)
  end
  -- admit decides whether a job of tenant tn (nil or '': none) and type typ
  -- may start, taking its tenant's slot and its limits' turns if so.
  admit = function(tn, typ)
    if tpaused and tn and tn ~= '' then
      if held[tn] == nil then
        held[tn] = redis.call('HEXISTS', ftp, tn) == 1
      end
      if held[tn] then
        return false
      end
    end
    local left = math.huge
    if capped and tn and tn ~= '' then
      left = room[tn]
      if left == nil then
        local cap = tonumber(redis.call('HGET', fcfg, 'c:' .. tn) or defcap)
        left = math.huge
        if cap > 0 then
          left = cap - redis.call('ZCARD', tbase .. tn)
        end
        room[tn] = left
      end
      if left <= 0 then
        return false
      end
    end
    if rated then
      local ft, fy, nt, ny = nil, nil, false, false
      if tn and tn ~= '' then
        ft = 't:' .. tn
        nt = turn(ft, specs[ft])
        if nt == nil then
          return false
        end
      end
      if typ then
        fy = 'y:' .. typ
        if specs[fy] == nil then
          specs[fy] = redis.call('HGET', fcfg, fy) or ''
        end
        ny = turn(fy, specs[fy])
        if ny == nil then
          return false
        end
      end
      if nt then
        tats[ft] = nt
      end
      if ny then
        tats[fy] = ny
      end
    end
    if left ~= math.huge then
      room[tn] = left - 1
    end
    return true
  end
end
while got < want and budget > 0 do
  local asked = math.min(want - got, budget)
  -- The first pop asks for the limit as the client sent it: a string,
  -- which Redis does not print again (see lib.lua promote).
  local popped = redis.call('ZPOPMIN', KEYS[2], asked == want and ARGV[1] or asked)
  if #popped == 0 then
    break
  end
  local n = #popped / 2
  local token = math.max(tonumber(redis.call('GET', KEYS[7]) or '0'), now_us)
  redis.call('SET', KEYS[7], int(token + n))
  local ids, job_keys = {}, {}
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
    job_keys[#job_keys + 1] = KEYS[9] .. popped[i]
  end
  local body_of = redis.call('HMGET', bodies, unpack(ids))
  -- Jobs enqueued to run at once have no state hash until their first
  -- fetch: when none of the pop has one (the common case), one EXISTS
  -- saves an HMGET per job.
  local stateless = redis.call('EXISTS', unpack(job_keys)) == 0
  local active = {}
  local leases = {} -- lease entries (lib.lua) of jobs with no state hash
  for i = 1, #popped, 2 do
    budget = budget - 1
    local id = popped[i]
    local body = body_of[(i + 1) / 2]
    local job_key = job_keys[(i + 1) / 2]
    local score = tonumber(popped[i + 1])
    local place = score % PRIORITY_SHIFT -- below 2^40: Lua writes it exactly
    local st, exp, att, tn, typ -- the state hash's fields, none without one
    if not stateless then
      local v = redis.call('HMGET', job_key, 's', 'e', 'a', 'tn', 't')
      st, exp, att, tn, typ = v[1], v[2], v[3], v[4], v[5]
    end
    if not st and body then
      tn = body_tenant(body)
    end
    if rated and not typ and body and body ~= '' then
      local _
      _, typ = body_tenant_type(body)
    end
    if st and exp and tonumber(exp) <= now then
      finish(KEYS[2], KEYS[4], 'expired', job_key, id, KEYS[10], now, now_us)
      redis.call('ZREM', KEYS[8], id)
    elseif policy and (st or body) and not admit(tn, typ) then
      skipped[#skipped + 1] = popped[i + 1]
      skipped[#skipped + 1] = id
    elseif not st then
      if body then
        -- No state hash: the job's lease is an entry of the lease hash,
        -- written with the others of the pop (lib.lua).
        token = token + 1
        if fair then
          local p = math.floor(score / PRIORITY_SHIFT)
          tags[p] = math.max(tags[p] or 0, place)
        end
        if tn ~= '' then
          moved = moved or {}
          tindex_group(moved, tn, id, lease_until)
        end
        leases[#leases + 1] = id
        -- One format for both numbers (int's '%d'): a Lua string less per
        -- job than two int calls.
        leases[#leases + 1] = string.format('%d|%d', token, place) .. lease_mid .. tn
        active[#active + 1] = lease_until
        active[#active + 1] = id
        got = got + 1
        out[#out + 1] = id
        out[#out + 1] = body
        out[#out + 1] = token
      end
    else
      token = token + 1
      if fair then
        local p = math.floor(score / PRIORITY_SHIFT)
        tags[p] = math.max(tags[p] or 0, place)
      end
      local attempt = fmt((tonumber(att) or 0) + 1)
      if ARGV[3] ~= '' then
        redis.call('HSET', job_key, 's', 'active', 'a', attempt, 'tk', int(token), 'q', int(place),
          'lu', lease_until, 'st', now_s, 'w', ARGV[3])
      else
        redis.call('HSET', job_key, 's', 'active', 'a', attempt, 'tk', int(token), 'q', int(place),
          'lu', lease_until, 'st', now_s)
        redis.call('HDEL', job_key, 'w')
      end
      active[#active + 1] = lease_until
      active[#active + 1] = id
      if tn then -- a tenant's job (lib.lua)
        moved = moved or {}
        tindex_group(moved, tn, id, lease_until)
      end
      got = got + 1
      out[#out + 1] = id
      out[#out + 1] = body or ''
      out[#out + 1] = redis.call('HGETALL', job_key)
    end
  end
  if #active > 0 then
    -- The active set and the lease hash (a subset of it) are made tables
    -- (lib.lua PIN) once they reach TABLE_FROM; below that a listpack is
    -- cheaper to create, write and delete (a queue run one job at a
    -- time: 8% of its fetch and completion).
    local big = redis.call('ZCARD', KEYS[3]) + #active / 2 >= TABLE_FROM
    if big then
      zadd_table(KEYS[3], active, 1, #active)
    else
      redis.call('ZADD', KEYS[3], unpack(active))
    end
    if #leases > 0 and big then
      hset_table(lease_hash, leases)
    elseif #leases > 0 then
      redis.call('HSET', lease_hash, unpack(leases))
    end
  end
  if moved then
    tindex_flush(KEYS[9], moved, 'pending', 'active')
  end
  if n < asked then
    break -- no job is left pending: another ZPOPMIN would find none
  end
end
if policy then
  local rl = {}
  for f, tat in pairs(tats) do
    rl[#rl + 1] = f
    rl[#rl + 1] = fmt(tat)
  end
  if #rl > 0 then
    redis.call('HSET', frl, unpack(rl))
  end
  for c = 1, #skipped, 1000 do
    redis.call('ZADD', KEYS[2], unpack(skipped, c, math.min(c + 999, #skipped)))
  end
end
if fair then
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('DEL', fst)
  else
    for p, tag in pairs(tags) do
      local f = 'v:' .. p
      if tag > tonumber(redis.call('HGET', fst, f) or '-1') then
        redis.call('HSET', fst, f, fmt(tag))
      end
    end
  end
end
return out
