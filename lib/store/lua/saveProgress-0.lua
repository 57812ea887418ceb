--[[
  saveProgress: record running jobs' step progress (for `show`), but only for each job's current
  run while it runs: a late line from an older run changes nothing.

  ARGV[1] key prefix
  ARGV[2..] triples: job id, run, steps JSON
  Returns: the number of jobs updated
]]
local prefix = ARGV[1]
local updated = 0
for i = 2, #ARGV, 3 do
  local jobKey = prefix .. 'job:' .. ARGV[i]
  local state, run = unpack(redis.call('HMGET', jobKey, 'state', 'run'))
  if state == 'running' and run == ARGV[i + 1] then
    redis.call('HSET', jobKey, 'steps', ARGV[i + 2])
    updated = updated + 1
  end
end
return updated
