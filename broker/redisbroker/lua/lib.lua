-- lib.lua is not a script: scripts.go prepends it to every script below, so
-- they share one definition of time, scores and state moves.
--
-- A job lives in two places:
--
-- * Its body, in the queue's body hash (<prefix>:{queue}:b, field = job id):
--   the immutable fields, encoded by the Go client and prefixed here with
--   the created time: "c|m|p|to|lt|ltn|lco|lh|" then type, tenant, company
--   and headers JSON (of the given byte lengths), then the data. Every job
--   has a body entry; it is '' for jobs whose fields all live in the hash
--   (jobs written by the workflow and schedule scripts). Duplicate ids are
--   found here with one HMGET for a whole batch.
--
-- * Its state hash (<prefix>:{queue}:j:<id>), created lazily: a job added
--   straight to pending with no unique key and no TTL has none until a
--   script first changes it (fetch, cancel). A body without a state hash
--   means: pending, attempt 0, run at = created. Once it exists it holds at
--   least s state and a attempt; p priority, m max attempts, c created and
--   r run at may be missing (fetch leaves them to the body), and scripts
--   read them with job_number. It overrides the body's fields when the job
--   is decoded. Its fields: id, t type, d data, p priority,
--   m max attempts, a attempt, tn tenant, co company, h headers (JSON),
--   u unique slot (broker.UniqueSlot: the unique key, namespaced by the
--   tenant when the job has one), to timeout (ns), s state, c created, r run at, e expires
--   at, st started, f finished, le last error, res result, pg progress,
--   tk lease token, lu lease until (meaningful while active only), w worker,
--   dc '1' when the job is removed as soon as it completes, la '1' once it
--   completed (its history, below), q the seq of
--   its place in the pending zset when it was last fetched (make_pending).
--   Times are unix milliseconds.
--
-- * Its attempt history (<prefix>:{queue}:h:<id>), created by the first
--   attempt that ends other than by completion: a list of its last 20
--   finished attempts (broker.MaxAttemptHistory), oldest first, each a
--   compact JSON array [attempt, worker, started, finished, outcome] with
--   the error (cut to broker.MaxAttemptErrorBytes) as a sixth element when
--   there is one; broker.DecodeAttemptRecord reads them. A completed job's
--   last attempt is not in the list: completion sets 'la' '1' in the state
--   hash, whose a, w, st and f describe that attempt, and readers add it
--   (history). Jobs completed by a release of format 7 or older have no
--   'la' (format 7 listed the completed attempt, older ones none), so they
--   show what they showed. Only get.lua reads it; scripts
--   derive its name from the job hash prefix (hist_key) and delete it with
--   the job (delete_job, remove_finished, complete.lua).
--
-- Tenant index: each job with a tenant is also in the zset of its tenant and
-- state, <prefix>:{queue}:t:<state>:<tenant>, with the same score as in the
-- state's zset, so that a tenant's listing is one ZRANGE. Its name cannot be
-- known before the script reads the job, so scripts derive it from the job
-- hash prefix they are given in KEYS (tindex_move), as they derive the body
-- hash: same hash tag, so same Cluster slot. Every state change keeps it
-- exact through the functions below (finish, make_pending, retry_attempt,
-- tindex_move; batches group their moves per tenant with tindex_group and
-- tindex_flush). A job's state hash, once it exists, holds 'tn' when the job
-- has a tenant (every script that creates one writes it), so scripts learn
-- the tenant from the HMGET they do anyway; only a job with just a body
-- (pending, never changed) has its tenant read from the body. A job with no
-- tenant costs no tenant-index write.
--
-- Scripts return a job as {id, body or '', flat HGETALL of its state hash};
-- fetch returns a job whose state hash it just created as {id, body, lease
-- token} (the client knows the other fields it wrote).
--
-- Finished-state zsets are scored in unix microseconds so that jobs finished
-- in the same millisecond still list newest first.

if redis.replicate_commands then
  redis.replicate_commands()
end

-- A pending score is priority * 2^40 + seq: priority 1 (the most urgent)
-- first, FIFO among equals. seq stays below 2^40 and the score, with
-- priorities up to broker.MaxPriority (1000), stays exact below 2^53.
local PRIORITY_SHIFT = 1099511627776 -- 2^40
local DEFAULT_PRIORITY = 3 -- broker.DefaultPriority: what priority 0 means

-- stored_priority is broker.StoredPriority: a number below 1 was stored by
-- a release where 0 was the default and higher ran first.
local function stored_priority(p)
  p = tonumber(p)
  if p >= 1 then
    return p
  end
  return math.min(DEFAULT_PRIORITY - p, 1000)
end

-- fmt renders an integral number exactly (Lua would print 1.7e+12).
local function fmt(n)
  return string.format('%.0f', n)
end

-- int is fmt for a number known to be integral and below 2^53 (a time, a
-- token, a seq), at half the cost: '%d' prints a C long, where '%.0f' (and
-- Redis, given a Lua number as a command argument) goes through glibc's
-- multi-precision float printing. The per-job paths of insert, fetch and
-- completion use it, and every pending score (below 2^50).
local function int(n)
  return string.format('%d', n)
end

-- clock returns the Redis time in unix milliseconds and microseconds.
local function clock()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.floor(us / 1000), us
end

-- body_key names the body hash of the queue whose job hash prefix is given
-- ('<prefix>:{queue}:j:' → '<prefix>:{queue}:b'): same hash tag, so same slot.
local function body_key(job_prefix)
  return string.sub(job_prefix, 1, -3) .. 'b'
end

-- A job with only a body that is fetched (the common case: no unique key,
-- no TTL, never changed) gets no state hash either (format 9): its lease
-- is an entry of the queue's lease hash (<prefix>:{queue}:lease, field = job
-- id), and when it completes with no result the entry moves to the queue's
-- done hash (<prefix>:{queue}:done). Both are written once per batch, where
-- a state hash per job costs a key created and written at fetch, and read
-- and written again at completion. An entry is
-- "tk|q|st|f|<len of w>|" then w and tn: lease token, place, started,
-- finished ('' while active), worker and tenant; the attempt is 1, the
-- lease deadline is the job's score in the active zset, and a done entry
-- marks the history's last attempt ('la'). Such a job is active while it
-- has a lease entry, completed while it has a done entry. Readers see the
-- state hash the entry stands for (entry_hash); every script that changes
-- such a job other than by a plain completion first turns the entry into
-- its state hash (lift), so the rest of this file reads state hashes only.

-- lease_key and done_key name the lease and done hashes of the queue whose
-- job hash prefix is given: same hash tag, so same slot.
local function lease_key(job_prefix)
  return string.sub(job_prefix, 1, -3) .. 'lease'
end

local function done_key(job_prefix)
  return string.sub(job_prefix, 1, -3) .. 'done'
end

-- Redis keeps a small hash or zset (up to 128 entries of up to 64 bytes, by
-- default) as a listpack, where every write and lookup scans the entries,
-- and turns it into a table (a skiplist and a dict) for good once it holds
-- an entry longer than that. A busy queue's active zset, its tenants'
-- active zsets and its lease hash hold about as many entries as jobs run
-- and wait prefetched, around a hundred at concurrency 50, where scanning
-- cost a job more than the rest of its fetch and completion (callgrind: the
-- ZADD into the active set alone was about a third of Redis's work). So
-- the scripts that add to them add PIN, a name no job id can be (ids have
-- no '#') and longer than that limit, with the first entries, and remove
-- it in the same call: no reader ever sees it, and the structure stays a
-- table until it is emptied and deleted. It is a literal (65 '#'), as a
-- Functions library's top level may call nothing (functions.go).
local PIN = '#################################################################'

-- TABLE_FROM is the size from which a tenant's zset of completed jobs is
-- made a table (PIN) when jobs are added to it: retention keeps up to
-- CompletedMaxCount completed jobs per queue, so with a hundred tenants
-- each of their zsets holds about a hundred, every completion of a tenant's
-- job scanned its listpack (callgrind, a fair queue of 100 tenants fetching
-- 5 and keeping 10,000: 280k -> 260k Redis instructions per job). Smaller
-- zsets stay listpacks: with many tenants of few jobs each a table per
-- tenant would cost memory for no gain.
local TABLE_FROM = 32

-- zadd_table is ZADD key with args (score, member pairs), the zset made a
-- table first (PIN, above).
local function zadd_table(key, args, from, to)
  redis.call('ZADD', key, '0', PIN, unpack(args, from, to))
  redis.call('ZREM', key, PIN)
end

-- hset_table is HSET key with args (field, value pairs), the hash made a
-- table first (PIN, above).
local function hset_table(key, args)
  args[#args + 1] = PIN
  args[#args + 1] = '1'
  redis.call('HSET', key, unpack(args))
  redis.call('HDEL', key, PIN)
end

-- entry_fields splits a lease or done entry: token, place, started,
-- finished ('' for none), worker and tenant ('' for none), all strings.
local function entry_fields(e)
  local tk, q, st, f, lw, rest = string.match(e, '^(%d+)|(%d+)|(%d+)|(%d*)|(%d+)|()')
  lw = tonumber(lw)
  return tk, q, st, f, string.sub(e, rest, rest + lw - 1), string.sub(e, rest + lw)
end

-- entry_tenant_at returns the tenant of a lease or done entry ('' for
-- none) given where the worker's length starts. It reads the length from
-- its bytes: completion and retention call it per job, and a capture and
-- tonumber would cost a Lua string and a strtod each, for a tenant that
-- is mostly absent. One string.byte reads a length of up to two digits
-- (a library call costs Redis more than the arithmetic); longer ones a
-- byte at a time.
local function entry_tenant_at(e, at)
  local c1, c2, c3 = string.byte(e, at, at + 2)
  local lw
  if c2 == 124 then -- '|'
    lw, at = c1 - 48, at + 2
  elseif c3 == 124 then
    lw, at = c1 * 10 + c2 - 528, at + 3 -- 528: 48 * 10 + 48
  else
    local c
    lw, c = 0, c1
    while c ~= 124 do
      lw = lw * 10 + c - 48
      at = at + 1
      c = string.byte(e, at)
    end
    at = at + 1
  end
  at = at + lw
  if at > #e then
    return ''
  end
  return string.sub(e, at)
end

-- entry_tenant returns the tenant of a lease or done entry ('' for none).
local function entry_tenant(e)
  -- Plain finds past the four numbers: Lua's pattern matcher costs Redis
  -- more per byte than a library call per number.
  local at = 0
  for _ = 1, 4 do
    at = string.find(e, '|', at + 1, true)
  end
  return entry_tenant_at(e, at + 1)
end

-- entry_state returns the state hash, flat as HGETALL gives it, that a
-- lease or done entry e stands for: state s, then lu (the lease deadline,
-- a string; nil for none) for an active job.
local function entry_state(e, s, lu)
  local tk, q, st, f, w, tn = entry_fields(e)
  local h = {'s', s, 'a', '1', 'tk', tk, 'q', q, 'st', st}
  if s == 'completed' then
    h[#h + 1], h[#h + 2], h[#h + 3], h[#h + 4] = 'f', f, 'la', '1'
  elseif lu then
    h[#h + 1], h[#h + 2] = 'lu', lu
  end
  if w ~= '' then
    h[#h + 1], h[#h + 2] = 'w', w
  end
  if tn ~= '' then
    h[#h + 1], h[#h + 2] = 'tn', tn
  end
  return h
end

-- entry_hash returns the state hash that job id's lease or done entry
-- stands for (entry_state), and the hash holding the entry; nil when it
-- has neither.
local function entry_hash(job_prefix, id)
  local from = lease_key(job_prefix)
  local e = redis.call('HGET', from, id)
  if e then
    local lu = redis.call('ZSCORE', string.sub(job_prefix, 1, -3) .. 'active', id)
    return entry_state(e, 'active', lu), from
  end
  from = done_key(job_prefix)
  e = redis.call('HGET', from, id)
  if e then
    return entry_state(e, 'completed'), from
  end
  return nil
end

-- lift turns job id's lease or done entry, if it has one, into its state
-- hash, before a script changes the job other than by a plain completion.
local function lift(job_prefix, id)
  local job_key = job_prefix .. id
  if redis.call('EXISTS', job_key) == 1 then
    return
  end
  local h, from = entry_hash(job_prefix, id)
  if h then
    redis.call('HSET', job_key, unpack(h))
    redis.call('HDEL', from, id)
  end
end

-- tindex_move moves job id of tenant tn from the tenant index of state from
-- to that of state to (either nil: none), with score. No-op without a tenant.
local function tindex_move(job_prefix, tn, id, from, to, score)
  if not tn or tn == '' then
    return
  end
  local base = string.sub(job_prefix, 1, -3) .. 't:'
  if from then
    redis.call('ZREM', base .. from .. ':' .. tn, id)
  end
  if to then
    redis.call('ZADD', base .. to .. ':' .. tn, score, id)
  end
end

-- tindex_group adds job id, with score, to tenant tn's group in groups, so
-- that a batch writes its tenant index moves with tindex_flush: one ZREM and
-- one ZADD per tenant.
local function tindex_group(groups, tn, id, score)
  local g = groups[tn]
  if not g then
    g = {ids = {}, zs = {}}
    groups[tn] = g
  end
  g.ids[#g.ids + 1] = id
  g.zs[#g.zs + 1] = score
  g.zs[#g.zs + 1] = id
end

-- tindex_flush moves the grouped jobs from their tenant's zset of state from
-- to that of state to (either nil: none), and empties groups.
local function tindex_flush(job_prefix, groups, from, to)
  if next(groups) == nil then
    return -- no tenant's job: not even the key prefix is made
  end
  local base = string.sub(job_prefix, 1, -3) .. 't:'
  for tn, g in pairs(groups) do
    for c = 1, #g.ids, 1000 do
      local last = math.min(c + 999, #g.ids)
      if from then
        redis.call('ZREM', base .. from .. ':' .. tn, unpack(g.ids, c, last))
      end
      local key = to and base .. to .. ':' .. tn
      if to == 'active' and last - c >= 15 then
        -- Many jobs of one tenant at once: its active zset grows as large
        -- as the queue's (PIN, above).
        zadd_table(key, g.zs, 2 * c - 1, 2 * last)
      elseif to == 'completed' and redis.call('ZCARD', key) >= TABLE_FROM then
        zadd_table(key, g.zs, 2 * c - 1, 2 * last)
      elseif to then
        redis.call('ZADD', key, unpack(g.zs, 2 * c - 1, 2 * last))
      end
    end
    groups[tn] = nil
  end
end

-- body_tenant reads the tenant of a non-empty body ('' for none), cheaper
-- than body_tenant_type when there is none.
local function body_tenant(body)
  local lt, ltn, rest = string.match(body, '^%d+|%d+|%-?%d+|%d+|(%d+)|(%d+)|%d+|%d+|()')
  if ltn == '0' then
    return ''
  end
  lt = tonumber(lt)
  return string.sub(body, rest + lt, rest + lt + tonumber(ltn) - 1)
end

-- body_head reads the created time, max attempts and priority a body starts
-- with (strings), or nil for an empty body.
local function body_head(body)
  return string.match(body, '^(%d+)|(%d+)|(%-?%d+)|')
end

-- body_tenant_type reads the tenant and type of a non-empty body.
local function body_tenant_type(body)
  local lt, ltn, rest = string.match(body, '^%d+|%d+|%-?%d+|%d+|(%d+)|(%d+)|%d+|%d+|()')
  lt, ltn = tonumber(lt), tonumber(ltn)
  return string.sub(body, rest + lt, rest + lt + ltn - 1), string.sub(body, rest, rest + lt - 1)
end

-- body_headers reads the headers JSON of a non-empty body ('' for none).
local function body_headers(body)
  local lt, ltn, lco, lh, rest = string.match(body, '^%d+|%d+|%-?%d+|%d+|(%d+)|(%d+)|(%d+)|(%d+)|()')
  if lh == '0' then
    return ''
  end
  local at = rest + tonumber(lt) + tonumber(ltn) + tonumber(lco)
  return string.sub(body, at, at + tonumber(lh) - 1)
end

-- merge_headers merges the headers JSON object add ('' for none) into a
-- job's headers, which its state hash holds from then on ('h' overrides
-- the body's).
local function merge_headers(job_prefix, id, add)
  if add == '' then
    return
  end
  local job_key = job_prefix .. id
  local cur = redis.call('HGET', job_key, 'h')
  if not cur then
    local body = redis.call('HGET', body_key(job_prefix), id) or ''
    cur = ''
    if body ~= '' then
      cur = body_headers(body)
    end
  end
  local h = {}
  if cur ~= '' then
    h = cjson.decode(cur)
  end
  for k, v in pairs(cjson.decode(add)) do
    h[k] = v
  end
  redis.call('HSET', job_key, 'h', cjson.encode(h))
end

-- job_number returns field 'p' (priority) or 'm' (max attempts) of a job:
-- v, the value its state hash holds, else the one its body starts with.
local function job_number(job_prefix, id, field, v)
  if v then
    return v
  end
  local c, m, p = body_head(redis.call('HGET', body_key(job_prefix), id) or '')
  if field == 'm' then
    return m
  end
  return p
end

-- job_tenant returns a job's tenant ('' for none).
local function job_tenant(job_prefix, id)
  local tn = redis.call('HGET', job_prefix .. id, 'tn')
  if tn then
    return tn
  end
  local body = redis.call('HGET', body_key(job_prefix), id) or ''
  if body == '' then
    return ''
  end
  return body_tenant(body)
end

-- job_state returns a job's state, or nil if there is no such job.
local function job_state(job_prefix, id)
  local s = redis.call('HGET', job_prefix .. id, 's')
  if s then
    return s
  end
  if redis.call('HEXISTS', body_key(job_prefix), id) == 0 then
    return nil
  end
  if redis.call('HEXISTS', lease_key(job_prefix), id) == 1 then
    return 'active'
  end
  if redis.call('HEXISTS', done_key(job_prefix), id) == 1 then
    return 'completed'
  end
  return 'pending'
end

-- materialize creates the state hash of a job that has only a body (see
-- above), or a lease or done entry (lift), and returns the job's state, or
-- nil if there is no such job.
local function materialize(job_prefix, id)
  local job_key = job_prefix .. id
  lift(job_prefix, id)
  local s = redis.call('HGET', job_key, 's')
  if s then
    return s
  end
  local body = redis.call('HGET', body_key(job_prefix), id)
  if not body then
    return nil
  end
  local c, m, p = body_head(body)
  redis.call('HSET', job_key, 's', 'pending', 'a', '0', 'p', p, 'm', m, 'c', c, 'r', c)
  local tn = body_tenant(body)
  if tn ~= '' then -- a state hash holds its job's tenant (above)
    redis.call('HSET', job_key, 'tn', tn)
  end
  return 'pending'
end

-- hist_key names the attempt history of a job (above): same hash tag as the
-- job hash prefix, so same slot.
local function hist_key(job_prefix, id)
  return string.sub(job_prefix, 1, -3) .. 'h:' .. id
end

-- clip cuts s to at most n bytes without splitting a UTF-8 sequence
-- (broker.ClipAttemptError).
local function clip(s, n)
  if #s <= n then
    return s
  end
  while n > 0 do
    local c = string.byte(s, n + 1)
    if c < 128 or c >= 192 then -- s[n+1] starts a sequence: cut before it
      break
    end
    n = n - 1
  end
  return string.sub(s, 1, n)
end

-- attempt_entry renders one history entry: a, w and st are the attempt,
-- worker and start fields of the job's state hash, finished the end in
-- unix ms (a string), err '' or nil for none.
local function attempt_entry(a, w, st, finished, outcome, err)
  local e = ''
  if err and err ~= '' then
    e = ',' .. cjson.encode(clip(err, 1024))
  end
  return '[' .. (a or '0') .. ',' .. cjson.encode(w or '') .. ',' .. (st or '0') .. ',' ..
    finished .. ',"' .. outcome .. '"' .. e .. ']'
end

-- record_attempt appends the attempt of an active job that ends at now_ms
-- with outcome (and error err, '' or nil for none) to its history, keeping
-- the last 20. a, w and st are the attempt, worker and start fields of the
-- job's state hash, read by the caller with the fields it needs anyway.
-- Completion does not call it: a completed job's last attempt is still in
-- its state hash (a, w, st, f), so completion only marks it ('la', see
-- above) and get.lua renders it (last_attempt). That spares the hot path a
-- list written per job and deleted again by retention.
local function record_attempt(job_prefix, id, a, w, st, now_ms, outcome, err)
  local key = hist_key(job_prefix, id)
  local entry = attempt_entry(a, w, st, fmt(now_ms), outcome, err)
  if redis.call('RPUSH', key, entry) > 20 then
    redis.call('LTRIM', key, '-20', '-1')
  end
end

-- history returns a job's attempt history as JobGet shows it, oldest
-- first: the list, then the completed attempt its state hash holds when it
-- is marked 'la' (completion), the whole kept to the last 20.
local function history(job_prefix, id)
  local h = redis.call('LRANGE', hist_key(job_prefix, id), 0, -1)
  local v = redis.call('HMGET', job_prefix .. id, 'la', 'a', 'w', 'st', 'f')
  if not v[2] then
    local e = redis.call('HGET', done_key(job_prefix), id)
    if e then
      local _, _, st, f, w = entry_fields(e)
      v = {'1', '1', w, st, f}
    end
  end
  if v[1] == '1' then
    if #h >= 20 then
      table.remove(h, 1)
    end
    h[#h + 1] = attempt_entry(v[2], v[3], v[4], v[5] or '0', 'completed')
  end
  return h
end

-- record_active is record_attempt for a caller that has not read the job's
-- attempt fields.
local function record_active(job_prefix, id, now_ms, outcome, err)
  local v = redis.call('HMGET', job_prefix .. id, 'a', 'w', 'st')
  record_attempt(job_prefix, id, v[1], v[2], v[3], now_ms, outcome, err)
end

-- read_job returns a job as scripts return it: {id, body, state hash}.
local function read_job(job_prefix, id)
  local h = redis.call('HGETALL', job_prefix .. id)
  if #h == 0 then
    h = entry_hash(job_prefix, id) or h
  end
  return {id, redis.call('HGET', body_key(job_prefix), id) or '', h}
end

-- delete_job removes a job's body, state hash (or lease or done entry) and
-- attempt history.
local function delete_job(job_prefix, id)
  redis.call('DEL', job_prefix .. id, hist_key(job_prefix, id))
  redis.call('HDEL', body_key(job_prefix), id)
  redis.call('HDEL', lease_key(job_prefix), id)
  redis.call('HDEL', done_key(job_prefix), id)
end

-- Fair queues (broker/fair.go has the model). A queue's fair policy hash
-- (<prefix>:{queue}:fair) holds on '1' while fairness is on, base the seq
-- counter when it was turned on (tags start there, behind the jobs placed
-- by the counter before), cap the default per-tenant cap, anycap '1' when
-- some tenant is capped, rt the default tenant rate limit, anyrate '1' when
-- some limit is set, per tenant w:<tenant> its weight, c:<tenant> its cap
-- and r:<tenant> its rate limit, and per job type y:<type> its rate limit;
-- a rate limit is '<limit>|<period in µs>'. The rate hash
-- (<prefix>:{queue}:rl) holds each limit's GCRA theoretical arrival time
-- in unix µs, at t:<tenant> and y:<type>. The paused-tenants hash
-- (<prefix>:{queue}:tp) holds '1' per paused tenant. Its tag hash (<prefix>:{queue}:ft) holds per priority
-- p v:<p>, the tag of the last job fetched, and per priority and tenant
-- f:<p>:<tenant>, the tag of the tenant's turn, and u:<p>:<tenant>, how
-- many jobs have it (fair_tag); fetch deletes it when the queue has no
-- pending job left. In a fair queue a pending job's place (its score
-- below PRIORITY_SHIFT, 'q' once fetched) is its tag, not a seq. Both names
-- derive from the seq counter's, under the same hash tag.
local FAIR_SCALE = 1000 -- broker.FairScale
local FAIR_QUANTUM = 32 -- broker.FairQuantum (TestFairTurns holds them equal)

-- policy_keys names the fair policy and paused-tenants hashes of the queue
-- whose seq counter key is given ('<prefix>:{queue}:seq'): the two that
-- tell whether a queue has a policy, so a plain queue's calls make no
-- other name.
local function policy_keys(seq_key)
  local base = string.sub(seq_key, 1, -4)
  return base .. 'fair', base .. 'tp'
end

-- fair_keys names the fair policy, tag, rate and paused-tenants hashes of
-- the queue whose seq counter key is given (the first and last as
-- policy_keys does).
local function fair_keys(seq_key)
  local cfg, tp = policy_keys(seq_key)
  local base = string.sub(seq_key, 1, -4)
  return cfg, base .. 'ft', base .. 'rl', tp
end

-- insert_reject returns insert.lua's rejection of job i as its mode says:
-- each, as the one entry of an 'ok' list; else the whole call's answer. A
-- lib function, not one of insert's own: that would be a closure made on
-- every call.
local function insert_reject(each, i, kind, a, b)
  if each then
    return {'ok', 0, i, kind, a, b}
  end
  return {kind, i, a, b}
end

-- queue_policy says whether the queue whose seq counter key is given has a
-- policy (fair, caps, rates, paused tenants: its fair or paused-tenants
-- hash exists), and whether it is fair: one EXISTS for a queue without
-- one, an HGET more for a queue with one.
local function queue_policy(seq_key)
  local cfg, ftp = policy_keys(seq_key)
  if redis.call('EXISTS', cfg, ftp) == 0 then
    return false, false
  end
  return true, redis.call('HGET', cfg, 'on') == '1'
end

-- wake_worth says, before pending jobs are added to a queue (its pending
-- zset, and whether it has a policy: queue_policy), whether idle workers
-- must hear of them on the queue's wake channel: true when no job was
-- pending, or when the queue has a policy under which a fetch leases
-- fewer jobs than asked while jobs are pending. Otherwise it returns the
-- score of the queue's head job: an added job placed before it (a more
-- urgent priority) must be heard of too, as a Manager serving many busy
-- queues gives a woken queue the next turn (fetchready.go).
-- A job placed behind the head needs no wake: every worker whose last
-- fetch drained the queue (leased fewer than asked, so it waits) heard
-- of the add that ended the drain, and the others fetch again without
-- waiting (broker.Waiter); a wake would reach every Manager of a busy
-- queue, fifty processes woken per job, and help none. Callers test the
-- result with wake_for.
local function wake_worth(pending_key, policy)
  if policy then
    return true
  end
  local head = redis.call('ZRANGE', pending_key, '0', '0', 'WITHSCORES') -- strings: see promote
  if head[1] == nil then
    return true
  end
  return tonumber(head[2])
end

-- wake_for says whether jobs added with the lowest pending score low
-- (nil: none pending) must be announced, given wake_worth's answer w
-- (false or nil: the caller has no wake channel).
local function wake_for(w, low)
  return w == true or (w and low ~= nil and low < w) or false
end

-- fair_tag stamps a job of tenant tn (nil or '': none) that becomes pending
-- at priority p in a fair queue, and returns its place: the tag of the
-- tenant's turn (broker/fair.go), which FAIR_QUANTUM consecutive jobs of
-- the tenant share. Jobs of one tag are fetched in id order, so a turn's
-- jobs lie together in the pending zset and a fetch batch holds few
-- tenants: with one job per turn, a fair queue of many tenants moved
-- every job of a batch in its own tenant index command at the fetch and
-- again at the completion, a third more Redis work per job than the whole
-- rest of a plain job's. A tenant whose turn is behind V - 1 (V: the tag
-- of the last job fetched at p; the tenant was idle) starts a new turn
-- there, just before the turn in progress, as the SQLite broker does
-- (fairTurn.from says why V - 1).
local function fair_tag(cfg, st, p, tn)
  tn = tn or ''
  local c = redis.call('HMGET', cfg, 'w:' .. tn, 'base')
  local f, u = 'f:' .. p .. ':' .. tn, 'u:' .. p .. ':' .. tn
  local s = redis.call('HMGET', st, 'v:' .. p, f, u)
  local start = math.max(tonumber(s[1] or '0') - 1, tonumber(c[2] or '0'), 0)
  local tag, used = tonumber(s[2] or '-1'), tonumber(s[3] or '0')
  if tag < start then
    tag, used = start, 0
  end
  if used + 1 >= FAIR_QUANTUM then
    redis.call('HSET', st, f, fmt(tag + math.ceil(FAIR_SCALE / tonumber(c[1] or '1'))), u, '0')
  else
    redis.call('HSET', st, f, fmt(tag), u, fmt(used + 1))
  end
  return math.min(tag, PRIORITY_SHIFT - 1)
end

-- pending_score gives the next pending position for a priority and tenant:
-- lower numbers first, then FIFO by the queue's sequence counter, or in a
-- fair queue by the job's fair tag. fair, when not nil, says whether the
-- queue is fair (queue_policy); nil reads it.
local function pending_score(seq_key, priority, tn, fair)
  priority = stored_priority(priority)
  if fair ~= false then -- a queue known not to be fair names no fair keys
    local cfg, st = fair_keys(seq_key)
    if fair == nil then
      fair = redis.call('HGET', cfg, 'on') == '1'
    end
    if fair then
      return int(priority * PRIORITY_SHIFT + fair_tag(cfg, st, priority, tn))
    end
  end
  local seq = redis.call('INCR', seq_key)
  return int(priority * PRIORITY_SHIFT + seq)
end

-- remove_finished deletes finished jobs of state whole: their entries in
-- zset (that state's), the ttl zset and their tenant's index, state hashes
-- (or done entries), attempt histories and bodies; at most seven commands per 1000
-- jobs (unpack is bounded by Lua's stack), plus one HGET for its tenant per
-- job with a state hash and one ZREM per tenant. A done entry names its
-- job's tenant, read for the whole slice with one HMGET. Their unique keys
-- were released when they finished.
local function remove_finished(zset, ttl_key, job_prefix, ids, state)
  local bodies, done = body_key(job_prefix), done_key(job_prefix)
  local gone = {} -- tenant index entries, per tenant
  -- Only jobs with a TTL are in the ttl zset: without one, no ZREM whose
  -- every id Redis would copy in for a key that is not there.
  local ttl = redis.call('EXISTS', ttl_key) == 1
  for c = 1, #ids, 1000 do
    local last = math.min(c + 999, #ids)
    local keys, hists = {}, {}
    local entries = {}
    if state == 'completed' then
      entries = redis.call('HMGET', done, unpack(ids, c, last))
    end
    for i = c, last do
      local e, tn = entries[i - c + 1], nil
      if e then -- no state hash, and no history: it completed at once
        tn = entry_tenant(e)
      else
        keys[#keys + 1] = job_prefix .. ids[i]
        hists[#hists + 1] = hist_key(job_prefix, ids[i])
        tn = redis.call('HGET', keys[#keys], 'tn')
      end
      if tn and tn ~= '' then
        tindex_group(gone, tn, ids[i], 0)
      end
    end
    tindex_flush(job_prefix, gone, state, nil)
    redis.call('ZREM', zset, unpack(ids, c, last))
    if ttl then
      redis.call('ZREM', ttl_key, unpack(ids, c, last))
    end
    if #keys > 0 then
      redis.call('DEL', unpack(keys))
      redis.call('DEL', unpack(hists))
    end
    redis.call('HDEL', bodies, unpack(ids, c, last))
    if state == 'completed' then
      redis.call('HDEL', done, unpack(ids, c, last))
    end
  end
end

-- make_pending puts a job in the pending zset (and its tenant's), from the
-- state its hash still names. With keep, a job that was leased before goes
-- back to its place, the seq (or fair tag) its fetch recorded in 'q' (lease
-- recovery and hand-back: a crashed worker's jobs run before those enqueued
-- after them; also a job maintain.lua spread out after a crash, marked
-- 'cs'); otherwise, and for a job with no recorded place, it goes to the
-- back of its priority (in a fair queue: its tenant's).
local function make_pending(pending_key, seq_key, job_key, id, keep)
  local prefix = string.sub(job_key, 1, #job_key - #id)
  local v = redis.call('HMGET', job_key, 'p', 's', 'tn', 'q', 'cs')
  local p = tonumber(job_number(prefix, id, 'p', v[1]) or '0')
  local score
  if v[5] then -- spread out after a crash (maintain.lua): its place is kept
    keep = true
    redis.call('HDEL', job_key, 'cs')
  end
  if keep and v[4] then
    score = int(stored_priority(p) * PRIORITY_SHIFT + tonumber(v[4]))
  else
    score = pending_score(seq_key, p, v[3])
  end
  redis.call('ZADD', pending_key, score, id)
  tindex_move(prefix, v[3], id, v[2], 'pending', score)
  redis.call('HSET', job_key, 's', 'pending')
  redis.call('HDEL', job_key, 'lu')
end

-- free_unique frees unique key u if job id still holds it.
local function free_unique(unique_prefix, u, id)
  if u and u ~= '' and redis.call('GET', unique_prefix .. u) == id then
    redis.call('DEL', unique_prefix .. u)
  end
end

-- release_unique frees the job's unique key if the job still holds it.
local function release_unique(unique_prefix, job_key, id)
  free_unique(unique_prefix, redis.call('HGET', job_key, 'u'), id)
end

-- finish moves a job from the zset it is in to a final state's zset (and
-- its tenant's, from the state its hash still names).
local function finish(from_key, to_key, state, job_key, id, unique_prefix, now_ms, now_us)
  local v = redis.call('HMGET', job_key, 'u', 's', 'tn')
  redis.call('ZREM', from_key, id)
  redis.call('ZADD', to_key, fmt(now_us), id)
  tindex_move(string.sub(job_key, 1, #job_key - #id), v[3], id, v[2], state, fmt(now_us))
  redis.call('HSET', job_key, 's', state, 'f', fmt(now_ms))
  redis.call('HDEL', job_key, 'lu')
  free_unique(unique_prefix, v[1], id)
end

-- promote moves up to limit due scheduled jobs to pending; returns how many.
-- limit may be a string: Redis before 7.2 prints each Lua number given to
-- a command with snprintf's %.17g, about 1,500 instructions, and fetch
-- promotes on every call.
local function promote(scheduled_key, pending_key, seq_key, job_prefix, now_ms, limit)
  local ids = redis.call('ZRANGEBYSCORE', scheduled_key, '-inf', int(now_ms), 'LIMIT', '0', limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', scheduled_key, id)
    local job_key = job_prefix .. id
    if redis.call('EXISTS', job_key) == 1 then
      make_pending(pending_key, seq_key, job_key, id)
    end
  end
  return #ids
end

-- check_lease lifts a job's lease entry into its state hash, then returns 1 if the job is active under token, 0 if it does not
-- exist, -1 if the lease is lost (a job with only a body is pending); and
-- the job's tenant (nil for none).
local function check_lease(job_prefix, id, token)
  lift(job_prefix, id)
  local v = redis.call('HMGET', job_prefix .. id, 's', 'tk', 'tn')
  if not v[1] then
    if redis.call('HEXISTS', body_key(job_prefix), id) == 1 then
      return -1
    end
    return 0
  end
  if v[1] ~= 'active' or v[2] ~= token then
    return -1
  end
  return 1, v[3]
end

-- retry_attempt records a failed attempt of an active job: its error
-- (the last error, and the attempt's entry in the history, outcome
-- retry_scheduled or dead), the headers JSON object headers ('' for none) merged into the job's and,
-- when max_override > 0, a new max attempts (stored first). If attempts are
-- left and discard is not '1', the job is scheduled again after delay_ms
-- and it returns true; otherwise it returns false and the caller moves the
-- job to dead (with whatever else that transition does).
local function retry_attempt(active_key, scheduled_key, job_key, id, err, delay_ms, discard, max_override, headers, now_ms)
  redis.call('HSET', job_key, 'le', err)
  if tonumber(max_override) > 0 then
    redis.call('HSET', job_key, 'm', max_override)
  end
  local prefix = string.sub(job_key, 1, #job_key - #id)
  merge_headers(prefix, id, headers)
  local v = redis.call('HMGET', job_key, 'a', 'm', 'tn', 'w', 'st')
  local m = job_number(prefix, id, 'm', v[2])
  if discard == '1' or tonumber(v[1]) >= tonumber(m) then
    record_attempt(prefix, id, v[1], v[4], v[5], now_ms, 'dead', err)
    return false
  end
  record_attempt(prefix, id, v[1], v[4], v[5], now_ms, 'retry_scheduled', err)
  local due = fmt(now_ms + tonumber(delay_ms))
  redis.call('ZREM', active_key, id)
  redis.call('ZADD', scheduled_key, due, id)
  tindex_move(prefix, v[3], id, 'active', 'scheduled', due)
  redis.call('HSET', job_key, 's', 'scheduled', 'r', due)
  redis.call('HDEL', job_key, 'lu')
  return true
end
