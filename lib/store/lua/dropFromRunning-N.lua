--[[
  dropFromRunning: the fetcher found jobs in Running_Queue that are not running (no record, or a record
  in another state: a leftover entry). They leave Running_Queue -- unless running again by now
  (a new run was marked running meanwhile): that entry is the new run's, and stays.

  KEYS[1] Running_Queue
  KEYS[2 ..] job:<id> of each job, in order
  ARGV[1 ..] the job ids
  Returns: the number of entries removed
]]
local removed = 0
for j = 1, #ARGV do
  if redis.call('HGET', KEYS[j + 1], 'state') ~= 'running' then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[j])
  end
end
return removed
