--[[
  markRunning: the fetcher saw a launched run's process start (granted -> running). The job
  joins Running_Queue, scored with the first time the fetcher should look at it: one poll
  period from now, or its deadline if that comes first. A run that is not the job's current
  one, or that already ended, is ignored, so replaying the run log is harmless.

  KEYS[1] Starting        KEYS[2] Running_Queue   KEYS[3] Events
  ARGV[1] key prefix      ARGV[2] now (ms)
  ARGV[3..] tuples of 4: id, run, pid (process group), start time (ms)
  Returns: the number of jobs that became running
  Events: running
]]
local prefix, now = ARGV[1], tonumber(ARGV[2])
local changed = 0
for i = 3, #ARGV, 4 do
  local id, run, pid, startedAt = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local jobKey = prefix .. 'job:' .. id
  local state, current, pollMs, timeoutMs, cancelRequested =
    unpack(redis.call('HMGET', jobKey, 'state', 'run', 'pollMs', 'timeoutMs', 'cancelRequested'))
  if state == 'granted' and current == run then
    local nextLook = now + (tonumber(pollMs) or 30000)
    if cancelRequested then nextLook = now end
    redis.call('HSET', jobKey, 'state', 'running', 'pid', pid, 'startedAt', startedAt)
    if timeoutMs and timeoutMs ~= '' then
      local deadline = startedAt + tonumber(timeoutMs)
      redis.call('HSET', jobKey, 'deadline', deadline)
      if deadline < nextLook then nextLook = deadline end
    end
    redis.call('SREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], nextLook, id)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'running', 'run', run)
    changed = changed + 1
  end
end
return changed
