--[[
  explainWait: tell the jobs waiting in a location's queue why they wait (the EC2 provisioner:
  "waiting for an EC2 instance: RunInstances failed ..."), shown by `jobs` and `show`. Only jobs
  still queued are told: one granted meanwhile keeps its record as it is.

  KEYS[1] Job_Queue:<location>   KEYS[2] key prefix (includes/keys.lua)
  ARGV[1] reason   ARGV[2] most jobs to tell (the most recently queued: LRANGE from the left)
  Returns: the number of jobs told
]]
-- @include keys

local told = 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  local key = jobKey(KEYS[2], id)
  if redis.call('HGET', key, 'state') == 'queued' then
    redis.call('HSET', key, 'reason', ARGV[1])
    told = told + 1
  end
end
return told
