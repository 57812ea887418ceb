--[[
  markRunning: the fetcher saw a launched run's process start (granted -> running). The job
  joins Running_Queue, scored with the first time the fetcher should look at it: one poll
  period from now, or its deadline if that comes first (now, if it was cancelled meanwhile).
  A run that is not the job's current one, or that already ended, is ignored, so replaying a
  run log is harmless.

  The node that saw it start watches it from then on: its Running_Queue, recorded as `node` (a
  remote run's start may be read by another node than the one that launched it).

  KEYS[1] Running_Queue:<node>   KEYS[2] Events
  KEYS[3 ..] job:<id> of each run, in order
  ARGV[1] now (ms)   ARGV[2] the node
  ARGV[3 ..] tuples of 5: id, run, pid (= its process group), start time (ms), launcher epoch
  Returns: {jobs that became running, the earliest score given (-1: none)}
  Events: running, with the job's `class` and, for its first run, `waited` (ms from queued to started)
]]
local now, node = tonumber(ARGV[1]), ARGV[2]
local changed, earliest = 0, -1
local k = 2
for i = 3, #ARGV, 5 do
  local id, run, pid, startedAt, epoch = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  k = k + 1
  local key = KEYS[k]
  local state, current, pollMs, timeoutMs, cancelRequested, classType, queuedAt =
    unpack(redis.call('HMGET', key, 'state', 'run', 'pollMs', 'timeoutMs', 'cancelRequested', 'classType', 'queuedAt'))
  if state == 'granted' and current == run then
    local nextLook = now + (tonumber(pollMs) or 30000)
    if cancelRequested then nextLook = now end
    redis.call('HSET', key, 'state', 'running', 'pid', pid, 'startedAt', startedAt, 'runlog', epoch, 'node', node)
    if timeoutMs and timeoutMs ~= '' then
      local deadline = startedAt + tonumber(timeoutMs)
      redis.call('HSET', key, 'deadline', deadline)
      if deadline < nextLook then nextLook = deadline end
    end
    redis.call('ZADD', KEYS[1], nextLook, id)
    -- Its class, and for a first run its wait (queued -> started, ms): the web page's tally and
    -- histograms need no read of the record (lib/web/event-hub.ts).
    local fields = { 'job', id, 'state', 'running', 'run', run, 'class', classType or '' }
    if run == '1' and queuedAt then
      fields[#fields + 1] = 'waited'
      fields[#fields + 1] = math.max(0, startedAt - tonumber(queuedAt))
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', unpack(fields))
    changed = changed + 1
    if earliest < 0 or nextLook < earliest then earliest = nextLook end
  end
end
return {changed, earliest}
