-- workflow_cancel.lua cancels a running run: its enqueued steps' jobs are
-- cancelled (an active one loses its lease), its waiting steps too, and the
-- run is cancelled. No compensation or hook runs.
--
-- KEYS: see workflow_lib.lua.
-- Returns {'ok'} | {'notfound'} | {'wrongstate', state}

local state = redis.call('HGET', RUN, 'st')
if not state then
  return {'notfound'}
end
if state ~= 'running' then
  return {'wrongstate', state}
end
local now, now_us = clock()
wf_cancel_open(wf_def(), now, now_us)
wf_set_state('cancelled', now)
return {'ok'}
