-- get.lua reads one job. It writes nothing.
--
-- KEYS[1] job hash prefix
-- ARGV[1] id
-- Returns the job as lib.lua describes, or nil when there is no such job.

local job = read_job(KEYS[1], ARGV[1])
if job[2] == '' and #job[3] == 0 then
  return nil
end
return job
