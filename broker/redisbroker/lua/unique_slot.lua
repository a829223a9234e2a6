-- unique_slot.lua moves the unique keys of tenant jobs to their tenant's
-- slot (stored format 4 to 5; broker.UniqueSlot, computed by the client):
-- for each job whose state hash still names the old key in 'u', 'u'
-- becomes the slot, and if the job holds the old key, the key is renamed to
-- the slot, so that it keeps holding. Idempotent: a job already moved, or
-- one that no longer holds its key, is left as it is.
--
-- KEYS[1] job hash prefix  KEYS[2] unique-key prefix
-- ARGV triples: job id, old key, slot
-- Returns the number of jobs whose 'u' it rewrote.

local moved = 0
for i = 1, #ARGV, 3 do
  local id, old, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local job_key = KEYS[1] .. id
  if redis.call('HGET', job_key, 'u') == old then
    redis.call('HSET', job_key, 'u', slot)
    moved = moved + 1
  end
  if redis.call('GET', KEYS[2] .. old) == id then
    redis.call('RENAME', KEYS[2] .. old, KEYS[2] .. slot)
  end
end
return moved
