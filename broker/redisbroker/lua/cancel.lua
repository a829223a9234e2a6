-- cancel.lua cancels a scheduled, pending or active job and frees its unique
-- key. Cancelling an active job revokes its lease: the worker's next extend,
-- complete or fail finds the state changed and gets lease lost.
--
-- KEYS[1] scheduled zset  KEYS[2] pending zset  KEYS[3] active zset
-- KEYS[4] cancelled zset  KEYS[5] job hash prefix  KEYS[6] unique-key prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[5],
--   under the same {queue} hash tag
-- ARGV[1] id  ARGV[2] tenant scope ('' for none): another tenant's job, or
--   one with no tenant, is not found
-- An active job's attempt is added to its history as cancelled (lib.lua).
-- Returns {'ok', job} with the job (see lib.lua) after the change
--   | {'notfound'} | {'wrongstate', state}

local id = ARGV[1]
local job_key = KEYS[5] .. id
if ARGV[2] ~= '' and job_tenant(KEYS[5], id) ~= ARGV[2] then
  return {'notfound'}
end
local s = materialize(KEYS[5], id)
if not s then
  return {'notfound'}
end
local from = {scheduled = KEYS[1], pending = KEYS[2], active = KEYS[3]}
if not from[s] then
  return {'wrongstate', s}
end
local now, now_us = clock()
if s == 'active' then
  record_active(KEYS[5], id, now, 'cancelled')
end
finish(from[s], KEYS[4], 'cancelled', job_key, id, KEYS[6], now, now_us)
return {'ok', read_job(KEYS[5], id)}
