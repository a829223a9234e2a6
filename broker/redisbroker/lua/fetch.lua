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
-- ARGV[1] limit  ARGV[2] lease duration ms  ARGV[3] worker id
-- Returns {'paused'} | {'ok', started ms, lease until ms, job_1, ..., job_k},
--   each job as lib.lua describes, read after the lease was taken; a job
--   that had no state hash is {id, body, lease token}: active, attempt 1,
--   started, leased until, by worker ARGV[3].
--
-- Lease tokens: KEYS[7] holds the last token issued, and a token is never
-- below the Redis clock in microseconds: a Redis restored from an older
-- snapshot, or a replica that lost the last writes, hands out tokens above
-- every token issued before (the clock moved on; tokens are issued far
-- slower than one per microsecond), so a lease taken before the rollback
-- cannot complete a job leased again after it. Each fetched job records
-- its place (its seq, 'q') so that recovery and hand-back put it back there
-- (lib.lua make_pending).

if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'paused'}
end
local now, now_us = clock()
promote(KEYS[1], KEYS[2], KEYS[6], KEYS[9], now, 1000)

local want = tonumber(ARGV[1])
local lease_until = fmt(now + tonumber(ARGV[2]))
local now_s = fmt(now)
local out = {'ok', now_s, lease_until}
local got = 0
local budget = want + 1000 -- bounds the expired jobs one call skips over
-- Per job: one HMGET and one HSET; a job that had a state hash before is
-- read back with HGETALL, one that had only a body gets its state hash here
-- (the lease fields only) and is returned as {id, body, token}. Per pop:
-- one HMGET of the bodies, one INCRBY reserving the tokens, one ZADD of the
-- active set.
local bodies = body_key(KEYS[9])
local moved = {} -- tenant index moves, pending to active, per tenant
while got < want and budget > 0 do
  local popped = redis.call('ZPOPMIN', KEYS[2], math.min(want - got, budget))
  if #popped == 0 then
    break
  end
  local n = #popped / 2
  local token = math.max(tonumber(redis.call('GET', KEYS[7]) or '0'), now_us)
  redis.call('SET', KEYS[7], fmt(token + n))
  local ids = {}
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
  end
  local body_of = redis.call('HMGET', bodies, unpack(ids))
  local active = {}
  for i = 1, #popped, 2 do
    budget = budget - 1
    local id = popped[i]
    local body = body_of[(i + 1) / 2]
    local job_key = KEYS[9] .. id
    local score = tonumber(popped[i + 1])
    local place = score % PRIORITY_SHIFT -- below 2^40: Lua writes it exactly
    local v = redis.call('HMGET', job_key, 's', 'e', 'a', 'tn')
    if v[1] and v[2] and tonumber(v[2]) <= now then
      finish(KEYS[2], KEYS[4], 'expired', job_key, id, KEYS[10], now, now_us)
      redis.call('ZREM', KEYS[8], id)
    elseif not v[1] then
      if body then
        -- Priority, max attempts, created and run at stay in the body; the
        -- tenant is written to the state hash (lib.lua).
        token = token + 1
        local tn = body_tenant(body)
        if tn ~= '' then
          tindex_group(moved, tn, id, lease_until)
          if ARGV[3] ~= '' then
            redis.call('HSET', job_key, 's', 'active', 'a', '1', 'tk', fmt(token), 'q', place, 'lu', lease_until, 'st', now_s, 'w', ARGV[3], 'tn', tn)
          else
            redis.call('HSET', job_key, 's', 'active', 'a', '1', 'tk', fmt(token), 'q', place, 'lu', lease_until, 'st', now_s, 'tn', tn)
          end
        elseif ARGV[3] ~= '' then
          redis.call('HSET', job_key, 's', 'active', 'a', '1', 'tk', fmt(token), 'q', place, 'lu', lease_until, 'st', now_s, 'w', ARGV[3])
        else
          redis.call('HSET', job_key, 's', 'active', 'a', '1', 'tk', fmt(token), 'q', place, 'lu', lease_until, 'st', now_s)
        end
        active[#active + 1] = lease_until
        active[#active + 1] = id
        got = got + 1
        out[#out + 1] = {id, body, token}
      end
    else
      token = token + 1
      local attempt = fmt((tonumber(v[3]) or 0) + 1)
      if ARGV[3] ~= '' then
        redis.call('HSET', job_key, 's', 'active', 'a', attempt, 'tk', fmt(token), 'q', place,
          'lu', lease_until, 'st', fmt(now), 'w', ARGV[3])
      else
        redis.call('HSET', job_key, 's', 'active', 'a', attempt, 'tk', fmt(token), 'q', place,
          'lu', lease_until, 'st', fmt(now))
        redis.call('HDEL', job_key, 'w')
      end
      active[#active + 1] = lease_until
      active[#active + 1] = id
      if v[4] then -- a tenant's job (lib.lua)
        tindex_group(moved, v[4], id, lease_until)
      end
      got = got + 1
      out[#out + 1] = {id, body or '', redis.call('HGETALL', job_key)}
    end
  end
  if #active > 0 then
    redis.call('ZADD', KEYS[3], unpack(active))
  end
  tindex_flush(KEYS[9], moved, 'pending', 'active')
end
return out
