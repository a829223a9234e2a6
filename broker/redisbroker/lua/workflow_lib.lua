-- workflow_lib.lua is not a script: workflow_scripts.go prepends it (after
-- lib.lua) to every workflow_*.lua script.
--
-- A run is one hash, <prefix>:{queue}:wf:<run>, in the slot of its queue, so
-- a script can change the run and its jobs atomically. Fields: id, wf
-- workflow, tn tenant, co company, ik idempotency key, st state, in input,
-- err error, fs failed step, c created ms, f finished ms, nc completions so
-- far, chain (JSON array: compensation order), ci (compensations started),
-- def (JSON, written by Go at creation and never changed:
--   {steps = [{name, deps = [..], job = tpl, comp = tpl?}], ok = tpl?, fail = tpl?}
-- with tpl = {id, type, data (a JSON document as a string), priority,
-- max_attempts, timeout (ns)}).
-- Per step <n>: s:<n> state, a:<n> attempts, o:<n> output, e:<n> last error,
-- t:<n> started ms, fn:<n> finished ms, cs:<n> completion order, c:<n>
-- compensation state.
--
-- Every workflow script takes the same KEYS:
-- KEYS[1] scheduled zset  KEYS[2] pending zset  KEYS[3] active zset
-- KEYS[4] completed zset  KEYS[5] dead zset     KEYS[6] cancelled zset
-- KEYS[7] seq counter     KEYS[8] job hash prefix  KEYS[9] unique-key prefix
-- KEYS[10] the run hash   KEYS[11] run index prefix (+ state .. ':' .. workflow)
-- KEYS[12] the idempotency key (create only; the run hash elsewhere)
--
-- A finished run is also in the zset KEYS[11] .. 'finished' (run id →
-- finished ms), which workflow_maintain.lua reads to apply retention.

local RUN = KEYS[10]

-- wf_def decodes the run's definition.
local function wf_def()
  return cjson.decode(redis.call('HGET', RUN, 'def'))
end

-- wf_find returns the kind ('step', 'comp', 'ok', 'fail') and the step of
-- the run that job id belongs to, or nil.
local function wf_find(def, id)
  for _, s in ipairs(def.steps) do
    if s.job.id == id then
      return 'step', s
    end
    if type(s.comp) == 'table' and s.comp.id == id then
      return 'comp', s
    end
  end
  if type(def.ok) == 'table' and def.ok.id == id then
    return 'ok', nil
  end
  if type(def.fail) == 'table' and def.fail.id == id then
    return 'fail', nil
  end
  return nil, nil
end

-- wf_insert inserts a pending job from a template, with the run's tenant
-- and company.
local function wf_insert(tpl, now)
  local job_key = KEYS[8] .. tpl.id
  if redis.call('HEXISTS', body_key(KEYS[8]), tpl.id) == 1 then
    return
  end
  local prio = tonumber(tpl.priority or 0)
  local f = {'id', tpl.id, 't', tpl.type, 'p', fmt(prio), 'm', fmt(tpl.max_attempts), 'a', '0',
    's', 'pending', 'c', fmt(now), 'r', fmt(now)}
  local meta = redis.call('HMGET', RUN, 'tn', 'co')
  local optional = {d = tpl.data, tn = meta[1], co = meta[2]}
  for k, v in pairs(optional) do
    if type(v) == 'string' and v ~= '' then
      f[#f + 1] = k
      f[#f + 1] = v
    end
  end
  if tpl.timeout and tonumber(tpl.timeout) > 0 then
    f[#f + 1] = 'to'
    f[#f + 1] = fmt(tonumber(tpl.timeout))
  end
  redis.call('HSET', job_key, unpack(f))
  redis.call('HSET', body_key(KEYS[8]), tpl.id, '') -- all its fields are in the hash
  redis.call('ZADD', KEYS[2], pending_score(KEYS[7], prio), tpl.id)
end

-- wf_set_state moves the run to a final state and its index entries along.
local function wf_set_state(state, now)
  local v = redis.call('HMGET', RUN, 'st', 'wf', 'c', 'id')
  redis.call('ZREM', KEYS[11] .. v[1] .. ':' .. v[2], v[4])
  redis.call('ZADD', KEYS[11] .. state .. ':' .. v[2], v[3], v[4])
  redis.call('ZADD', KEYS[11] .. 'finished', fmt(now), v[4])
  redis.call('HSET', RUN, 'st', state, 'f', fmt(now))
end

-- wf_cancel_open cancels every step not finished: the jobs of enqueued
-- steps (an active job loses its lease) and the waiting steps.
local function wf_cancel_open(def, now, now_us)
  local from = {scheduled = KEYS[1], pending = KEYS[2], active = KEYS[3]}
  for _, s in ipairs(def.steps) do
    local st = redis.call('HGET', RUN, 's:' .. s.name)
    if st == 'pending' then
      local job_key = KEYS[8] .. s.job.id
      local js = redis.call('HGET', job_key, 's')
      if js and from[js] then
        finish(from[js], KEYS[6], 'cancelled', job_key, s.job.id, KEYS[9], now, now_us)
      end
      redis.call('HSET', RUN, 's:' .. s.name, 'cancelled', 'fn:' .. s.name, fmt(now))
    elseif st == 'waiting' then
      redis.call('HSET', RUN, 's:' .. s.name, 'cancelled')
    end
  end
end

-- wf_advance starts the next compensation of a failed run, or the failure
-- hook once every compensation has finished.
local function wf_advance(def, now)
  local chain = cjson.decode(redis.call('HGET', RUN, 'chain') or '[]')
  local ci = redis.call('HINCRBY', RUN, 'ci', 1)
  if ci <= #chain then
    for _, s in ipairs(def.steps) do
      if s.name == chain[ci] then
        wf_insert(s.comp, now)
        redis.call('HSET', RUN, 'c:' .. s.name, 'pending')
      end
    end
  elseif ci == #chain + 1 and type(def.fail) == 'table' then
    wf_insert(def.fail, now)
  end
end

-- wf_fail_run fails the run because step s died with err: other open steps
-- are cancelled and the compensations of completed steps start, most
-- recently completed first.
local function wf_fail_run(def, s, err, now, now_us)
  wf_cancel_open(def, now, now_us)
  redis.call('HSET', RUN, 'err', err, 'fs', s.name)
  wf_set_state('failed', now)
  local done = {}
  for _, d in ipairs(def.steps) do
    if type(d.comp) == 'table' and redis.call('HGET', RUN, 's:' .. d.name) == 'completed' then
      done[#done + 1] = {d.name, tonumber(redis.call('HGET', RUN, 'cs:' .. d.name))}
    end
  end
  table.sort(done, function(x, y) return x[2] > y[2] end)
  local chain = {}
  for i, d in ipairs(done) do
    chain[i] = d[1]
  end
  if #chain > 0 then
    redis.call('HSET', RUN, 'chain', cjson.encode(chain))
  end
  redis.call('HSET', RUN, 'ci', '0')
  wf_advance(def, now)
end

-- wf_record copies the attempt count and start time of a step's job to the
-- run.
local function wf_record(s, job_key)
  local v = redis.call('HMGET', job_key, 'a', 'st')
  redis.call('HSET', RUN, 'a:' .. s.name, v[1] or '0')
  if v[2] then
    redis.call('HSET', RUN, 't:' .. s.name, v[2])
  end
end
