-- get.lua reads one job. It writes nothing.
--
-- KEYS[1] job hash prefix
-- ARGV[1] id  ARGV[2] tenant scope ('' for none)
-- Returns the job as lib.lua describes, or nil when there is no such job
--   or, with a scope, when it is not that tenant's.

local job = read_job(KEYS[1], ARGV[1])
if job[2] == '' and #job[3] == 0 then
  return nil
end
if ARGV[2] ~= '' and job_tenant(KEYS[1], ARGV[1]) ~= ARGV[2] then
  return nil
end
return job
