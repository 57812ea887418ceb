--[[
  route: move entries of Job_Queue that the manager has checked to their location's queue
  (Job_Queue:<location>), or mark them rejected with the reason. Entries that are no longer
  queued (cancelled meanwhile) are just dropped from Job_Queue. An entry that names no job
  record (anything but a job id: job ids are numbers) gets a record of its own, so that the
  rejection is visible.

  KEYS[1] Job_Queue       KEYS[2] Events
  ARGV[1] key prefix      ARGV[2] now (ms)
  ARGV[3..] tuples of 6: entry, location ('' to reject), normalised spec JSON or the reason,
    poll period (ms), timeout (ms, '' for none), retries -- copied out of the spec so that the
    other scripts need not decode it
  Returns: {routed, rejected}
  Events: rejected
]]
local prefix, now = ARGV[1], ARGV[2]
local routed, rejected = 0, 0
for i = 3, #ARGV, 6 do
  local entry, location, detail = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('LREM', KEYS[1], -1, entry) > 0 then
    local jobKey = prefix .. 'job:' .. entry
    -- Only a number can be a job id; anything else may name another key (`1:runs` is a list).
    local state = string.match(entry, '^%d+$') and redis.call('HGET', jobKey, 'state')
    if not state then
      local id = tostring(redis.call('INCR', prefix .. 'NextId'))
      jobKey = prefix .. 'job:' .. id
      redis.call('HSET', jobKey, 'id', id, 'name', string.sub(entry, 1, 80), 'classType', '?',
        'state', 'queued', 'queuedAt', now, 'attempt', 1, 'run', 0)
      redis.call('ZADD', prefix .. 'Jobs', id, id)
      entry, location, state = id, '', 'queued'
      detail = 'Job_Queue held an entry that is not a job id; queue job files with `jobmanager queue FILE`'
    end
    if state == 'queued' then
      if location ~= '' then
        redis.call('HSET', jobKey, 'location', location, 'spec', detail,
          'pollMs', ARGV[i + 3], 'timeoutMs', ARGV[i + 4], 'retries', ARGV[i + 5])
        redis.call('LPUSH', prefix .. 'Job_Queue:' .. location, entry)
        routed = routed + 1
      else
        redis.call('HSET', jobKey, 'state', 'rejected', 'reason', detail, 'endedAt', now)
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'job', entry, 'state', 'rejected', 'reason', detail)
        rejected = rejected + 1
      end
    end
  end
end
return {routed, rejected}
