-- commit.lua applies one broker.CommitParams of one queue, all or nothing:
-- fenced completions and failures, compare-and-set document writes with
-- their index entries, job inserts, cancels and deletes. Every check runs
-- before the first write, so a refused commit changes nothing.
--
-- KEYS[1] scheduled zset  KEYS[2] pending zset  KEYS[3] active zset
-- KEYS[4] completed zset  KEYS[5] dead zset     KEYS[6] cancelled zset
-- KEYS[7] expired zset    KEYS[8] ttl zset      KEYS[9] seq counter
-- KEYS[10] job hash prefix  KEYS[11] unique-key prefix
-- KEYS[12] document prefix: a document is the hash KEYS[12] .. kind .. ':'
--   .. key (fields v version, b body, x JSON array of its index names)
-- KEYS[13] index prefix: an index is the zset KEYS[13] .. kind .. ':' ..
--   name (member: document key, score)
-- KEYS[14] the queue's wake channel
-- Every key built here is KEYS[10..13] plus a suffix: all carry the queue's
-- hash tag, so the script stays in one Cluster slot. Tenant index zsets
-- (lib.lua) are derived from KEYS[10] so.
-- ARGV[1] the commit as JSON: {nb = not before ms (0: none),
--   c = {{id, token, result, delete 0|1}}, f = {{id, token, error, delay ms, discard
--   0|1, max attempts override, headers JSON merged into the job's ('' for
--   none)}}, d = {{kind, key, version, delete 0|1,
--   body, {{index, score}}}}, i = {{id, type, data, priority, max attempts,
--   tenant, company, headers JSON, unique slot (broker.UniqueSlot),
--   timeout ns, ttl ms, max
--   queue length, run at ms (0: none), delay ms, if absent 0|1, optional
--   0|1, delete on complete 0|1}}, x = {cancel ids}, r = {delete ids}, a = {ids that must not
--   exist}, m = {{id, due ms}}: jobs to reschedule}; result, body and
--   data are each the index of the ARGV that holds it (not inside the
--   JSON, where each would be escaped and unescaped)
-- Returns {'ok', now ms, {failed job states}, {document versions},
--   {per insert: state ('pending'|'scheduled') or 'exists'|'unique'|'full',
--   run at ms or detail}} | {'early', now ms} | {'lease', 'c'|'f', index,
--   0 not found | -1 lost} | {'conflict', what} | {'dup', index, existing
--   id, unique slot} | {'full', index, queued} | {'taken', id} |
--   {'resched', id, state ('' if missing)}

local P = cjson.decode(ARGV[1])
for _, c in ipairs(P.c) do c[3] = ARGV[c[3]] end
for _, d in ipairs(P.d) do d[5] = ARGV[d[5]] end
for _, j in ipairs(P.i) do j[3] = ARGV[j[3]] end
local now, now_us = clock()
if P.nb > 0 and now < P.nb then
  return {'early', fmt(now)}
end
local J, U, D, X = KEYS[10], KEYS[11], KEYS[12], KEYS[13]

-- Checks.
for i, c in ipairs(P.c) do
  local code = check_lease(J, c[1], c[2])
  if code ~= 1 then
    return {'lease', 'c', i, code}
  end
end
for i, f in ipairs(P.f) do
  local code = check_lease(J, f[1], f[2])
  if code ~= 1 then
    return {'lease', 'f', i, code}
  end
end
for _, d in ipairs(P.d) do
  local v = tonumber(redis.call('HGET', D .. d[1] .. ':' .. d[2], 'v') or '0')
  if v ~= d[3] then
    return {'conflict', 'document ' .. d[1] .. ' ' .. d[2] .. ' is at version ' .. v .. ', not ' .. d[3]}
  end
end
for _, id in ipairs(P.a) do
  if redis.call('HEXISTS', body_key(J), id) == 1 then
    return {'taken', id}
  end
end
local unfinished = {scheduled = true, pending = true, active = true}
for _, m in ipairs(P.m) do
  local s = job_state(J, m[1])
  if s ~= 'scheduled' and s ~= 'pending' then
    return {'resched', m[1], s or ''}
  end
end
for _, id in ipairs(P.r) do
  local s = job_state(J, id)
  if s and unfinished[s] then
    return {'conflict', 'job ' .. id .. ' to delete is ' .. s}
  end
end
local outcome, queued, accepted, seen, seen_u = {}, -1, 0, {}, {}
for i, j in ipairs(P.i) do
  local id, u, maxlen = j[1], j[9], j[12]
  if seen[id] or redis.call('HEXISTS', body_key(J), id) == 1 then
    if j[15] ~= 1 then
      return {'dup', i, id, ''}
    end
    outcome[i] = {'exists', id}
  end
  if not outcome[i] and u ~= '' then
    -- An earlier insert of this commit holds the key as surely as a stored job.
    local holder = seen_u[u] or redis.call('GET', U .. u)
    if holder and (seen_u[u] or unfinished[job_state(J, holder) or '']) then
      if j[16] ~= 1 then
        return {'dup', i, holder, u}
      end
      outcome[i] = {'unique', holder}
    end
  end
  if not outcome[i] and maxlen > 0 then
    if queued < 0 then
      queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    end
    if queued + accepted >= maxlen then
      if j[16] ~= 1 then
        return {'full', i, fmt(queued + accepted)}
      end
      outcome[i] = {'full', fmt(queued + accepted)}
    end
  end
  if not outcome[i] then
    seen[id] = true
    if u ~= '' then
      seen_u[u] = id
    end
    accepted = accepted + 1
  end
end

-- Writes.
for _, c in ipairs(P.c) do
  local id = c[1]
  local job_key = J .. id
  local v = redis.call('HMGET', job_key, 'dc', 'u', 'tn')
  if c[4] == 1 or v[1] == '1' then
    -- As complete.lua: removed whole, with its index entries and unique key.
    tindex_move(J, v[3], id, 'active', nil)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZREM', KEYS[8], id)
    free_unique(U, v[2], id)
    delete_job(J, id)
  else
    finish(KEYS[3], KEYS[4], 'completed', job_key, id, U, now, now_us)
    -- 'la': the attempt just ended is the history's last (lib.lua).
    if c[3] ~= '' then
      redis.call('HSET', job_key, 'la', '1', 'res', c[3])
    else
      redis.call('HSET', job_key, 'la', '1')
    end
  end
end
local failed, wake = {}, nil
for i, f in ipairs(P.f) do
  local job_key = J .. f[1]
  if retry_attempt(KEYS[3], KEYS[1], job_key, f[1], f[3], f[4], fmt(f[5]), fmt(f[6]), f[7], now) then
    failed[i] = 'scheduled'
    if wake == nil or f[4] < wake then
      wake = f[4]
    end
  else
    finish(KEYS[3], KEYS[5], 'dead', job_key, f[1], U, now, now_us)
    failed[i] = 'dead'
  end
end
local versions = {}
for i, d in ipairs(P.d) do
  local doc = D .. d[1] .. ':' .. d[2]
  for _, name in ipairs(cjson.decode(redis.call('HGET', doc, 'x') or '[]')) do
    redis.call('ZREM', X .. d[1] .. ':' .. name, d[2])
  end
  if d[4] == 1 then
    redis.call('DEL', doc)
    versions[i] = 0
  else
    local names = {}
    for k, x in ipairs(d[6]) do
      names[k] = x[1]
      redis.call('ZADD', X .. d[1] .. ':' .. x[1], x[2], d[2])
    end
    versions[i] = d[3] + 1
    local xs = '[]'
    if #names > 0 then
      xs = cjson.encode(names)
    end
    redis.call('HSET', doc, 'v', fmt(versions[i]), 'b', d[5], 'x', xs)
  end
end
local from = {scheduled = KEYS[1], pending = KEYS[2], active = KEYS[3]}
for _, id in ipairs(P.x) do
  local s = materialize(J, id)
  if s == 'active' then
    record_active(J, id, now, 'cancelled')
  end
  if s and from[s] then
    finish(from[s], KEYS[6], 'cancelled', J .. id, id, U, now, now_us)
  end
end
local finished = {completed = KEYS[4], dead = KEYS[5], cancelled = KEYS[6], expired = KEYS[7]}
for _, id in ipairs(P.r) do
  local s = job_state(J, id)
  if s then
    tindex_move(J, job_tenant(J, id), id, s, nil)
    redis.call('ZREM', finished[s], id)
    redis.call('ZREM', KEYS[8], id)
    release_unique(U, J .. id, id)
    delete_job(J, id)
  end
end
-- A rescheduled TTL keeps its length: ExpiresAt moves with the due time.
for _, m in ipairs(P.m) do
  local id, due = m[1], math.max(m[2], now)
  local job_key = J .. id
  materialize(J, id)
  local v = redis.call('HMGET', job_key, 'r', 'e', 's', 'tn')
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if v[2] then
    local e = due + (tonumber(v[2]) - tonumber(v[1]))
    redis.call('HSET', job_key, 'e', fmt(e))
    redis.call('ZADD', KEYS[8], fmt(e), id)
  end
  redis.call('HSET', job_key, 'r', fmt(due))
  if due > now then
    redis.call('ZADD', KEYS[1], fmt(due), id)
    tindex_move(J, v[4], id, v[3], 'scheduled', fmt(due))
    redis.call('HSET', job_key, 's', 'scheduled')
    if wake == nil or due - now < wake then
      wake = due - now
    end
  else
    make_pending(KEYS[2], KEYS[9], job_key, id)
    wake = 0
  end
end
local inserted = {}
for i, j in ipairs(P.i) do
  local o = outcome[i]
  if o then
    inserted[#inserted + 1] = o[1]
    inserted[#inserted + 1] = o[2]
  else
    local id, prio, u, ttl = j[1], j[4], j[9], j[11]
    local due, state = now, 'pending'
    if j[13] > 0 then
      due = j[13]
    elseif j[14] > 0 then
      due = math.floor((now_us + 999) / 1000) + j[14]
    end
    if due > now then
      state = 'scheduled'
    end
    local f = {'id', id, 't', j[2], 'p', fmt(prio), 'm', fmt(j[5]), 'a', '0', 's', state, 'c', fmt(now), 'r', fmt(due)}
    local optional = {d = j[3], tn = j[6], co = j[7], h = j[8], u = u}
    for k, val in pairs(optional) do
      if val ~= '' then
        f[#f + 1] = k
        f[#f + 1] = val
      end
    end
    if j[10] > 0 then
      f[#f + 1] = 'to'
      f[#f + 1] = fmt(j[10])
    end
    if ttl > 0 then
      f[#f + 1] = 'e'
      f[#f + 1] = fmt(due + ttl)
      redis.call('ZADD', KEYS[8], fmt(due + ttl), id)
    end
    if j[17] == 1 then
      f[#f + 1] = 'dc'
      f[#f + 1] = '1'
    end
    redis.call('HSET', J .. id, unpack(f))
    redis.call('HSET', body_key(J), id, '') -- all its fields are in the hash
    if state == 'pending' then
      local score = pending_score(KEYS[9], prio, j[6])
      redis.call('ZADD', KEYS[2], score, id)
      tindex_move(J, j[6], id, nil, 'pending', score)
      wake = 0
    else
      redis.call('ZADD', KEYS[1], fmt(due), id)
      tindex_move(J, j[6], id, nil, 'scheduled', fmt(due))
      if wake == nil or due - now < wake then
        wake = due - now
      end
    end
    if u ~= '' then
      redis.call('SET', U .. u, id)
    end
    inserted[#inserted + 1] = state
    inserted[#inserted + 1] = fmt(due)
  end
end
if wake ~= nil then
  redis.call('PUBLISH', KEYS[14], fmt(wake))
end
return {'ok', fmt(now), failed, versions, inserted}
