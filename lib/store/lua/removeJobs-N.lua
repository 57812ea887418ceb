--[[
  removeJobs: finished jobs removed for good (retention, `jobmanager purge`): the record, its
  runs list and its entry in Jobs. Only a job that is final now (succeeded, failed, cancelled,
  rejected) goes: one that was retried since it was chosen (queued, granted, running) is left as
  it is, and its state returned, so the caller keeps its files too. Nothing else holds a final
  job's id (the queues, Delayed, Running_Queue and the slot sets hold jobs that are not final).
  Its Events entries stay: the stream is capped and read as history.

  KEYS[1] Jobs
  KEYS[2 .. 1+2n] job:<id>, job:<id>:runs of each job, in order
  ARGV[1 .. n] their ids
  Returns: one result per id: 'removed' | 'unknown' | the state it has (not final: kept)
]]
local FINAL = { succeeded = true, failed = true, cancelled = true, rejected = true }
local results = {}
for i = 1, #ARGV do
  local id, key, runsKey = ARGV[i], KEYS[2 * i], KEYS[2 * i + 1]
  local state = redis.call('HGET', key, 'state')
  if not state then
    -- No record: an id left in Jobs alone (or nothing at all) is taken out of the listing.
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', runsKey)
    results[i] = 'unknown'
  elseif FINAL[state] then
    redis.call('DEL', key, runsKey)
    redis.call('ZREM', KEYS[1], id)
    results[i] = 'removed'
  else
    results[i] = state
  end
end
return results
