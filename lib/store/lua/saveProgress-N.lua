--[[
  saveProgress: record running jobs' step progress (for `show`), but only for each job's current
  run while it runs: a late line from an older run changes nothing.

  KEYS[1 ..] job:<id> of each job, in order
  ARGV[1 ..] pairs: run, steps JSON
  Returns: the number of jobs updated
]]
local updated = 0
for j = 1, #KEYS do
  local key, run, steps = KEYS[j], ARGV[2 * j - 1], ARGV[2 * j]
  local state, current = unpack(redis.call('HMGET', key, 'state', 'run'))
  if state == 'running' and current == run then
    redis.call('HSET', key, 'steps', steps)
    updated = updated + 1
  end
end
return updated
