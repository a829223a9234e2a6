-- get.lua reads one job with its attempt history. It writes nothing.
--
-- KEYS[1] job hash prefix (the history list is derived from it, lib.lua)
-- ARGV[1] id  ARGV[2] tenant scope ('' for none)
-- Returns {id, body, state hash, history entries} (the job as lib.lua
--   describes, then the history list, oldest first), or nil when there is
--   no such job or, with a scope, when it is not that tenant's.

local job = read_job(KEYS[1], ARGV[1])
if job[2] == '' and #job[3] == 0 then
  return nil
end
if ARGV[2] ~= '' and job_tenant(KEYS[1], ARGV[1]) ~= ARGV[2] then
  return nil
end
job[4] = history(KEYS[1], ARGV[1])
return job
