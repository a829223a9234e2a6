-- delete.lua removes a job that is not active: its body, its state hash, its
-- index entries and its unique key.
--
-- KEYS[1..7] the scheduled, pending, active, completed, dead, cancelled and
-- expired zsets  KEYS[8] ttl zset  KEYS[9] job hash prefix
-- KEYS[10] unique-key prefix
-- Tenant index zsets (lib.lua) are not in KEYS: they are derived from KEYS[9],
--   under the same {queue} hash tag
-- ARGV[1] id  ARGV[2] tenant scope ('' for none): another tenant's job, or
--   one with no tenant, is not found
-- Returns 1 deleted, 0 not found, -1 active (nothing changed).

local id = ARGV[1]
local job_key = KEYS[9] .. id
local s = job_state(KEYS[9], id)
if not s then
  return 0
end
local tn = job_tenant(KEYS[9], id)
if ARGV[2] ~= '' and tn ~= ARGV[2] then
  return 0
end
if s == 'active' then
  return -1
end
local index = {scheduled = 1, pending = 2, active = 3, completed = 4, dead = 5,
  cancelled = 6, expired = 7}
if index[s] then
  redis.call('ZREM', KEYS[index[s]], id)
end
tindex_move(KEYS[9], tn, id, s, nil)
redis.call('ZREM', KEYS[8], id)
release_unique(KEYS[10], job_key, id)
delete_job(KEYS[9], id)
return 1
