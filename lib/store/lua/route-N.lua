--[[
  route: move entries of Job_Queue that the manager has checked to their location's queue
  (Job_Queue:<location>), or mark them rejected with the reason. Entries that are no longer
  queued (cancelled meanwhile) are just dropped from Job_Queue. An entry that names no job
  record (anything but a job id: job ids are numbers) gets a record of its own, so that the
  rejection is visible.

  KEYS[1] Job_Queue   KEYS[2] Events   KEYS[3] NextId   KEYS[4] Jobs
  KEYS[5] key prefix (includes/keys.lua: the record made for an entry that is not a job id)
  KEYS[6 .. 5+L]        Job_Queue:<location> of the L locations named in ARGV, in that order
  KEYS[6+L .. 5+L+D]    job:<entry> of each of the D decisions, in order
  ARGV[1] now (ms)      ARGV[2] L      ARGV[3 .. 2+L] the location names
  then D tuples of 7: entry, location ('' to reject), normalised spec JSON or the reason,
    poll period (ms), timeout (ms, '' for none), retries -- copied out of the spec so that the
    other scripts need not decode it -- and the job's sweep ('' for none): the spec of a sweep's
    job is stored once, on its sweep (sweep:<first>; '' as the spec: already stored there)
  Returns: {routed, rejected}
  Events: rejected
]]
-- @include keys

local now, prefix, l = ARGV[1], KEYS[5], tonumber(ARGV[2])
local queueOf = {}
for j = 1, l do queueOf[ARGV[2 + j]] = KEYS[5 + j] end
local routed, rejected = 0, 0
local d = 0
for i = 3 + l, #ARGV, 7 do
  d = d + 1
  local entry, location, detail = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = KEYS[5 + l + d]
  if redis.call('LREM', KEYS[1], -1, entry) > 0 then
    -- Only a number can be a job id; anything else may name another key (`1:runs` is a list).
    local state = string.match(entry, '^%d+$') and redis.call('HGET', key, 'state')
    if not state then
      local id = tostring(redis.call('INCR', KEYS[3]))
      key = jobKey(prefix, id)
      redis.call('HSET', key, 'id', id, 'name', string.sub(entry, 1, 80), 'classType', '?',
        'state', 'queued', 'queuedAt', now, 'attempt', 1, 'run', 0)
      redis.call('ZADD', KEYS[4], id, id)
      entry, location, state = id, '', 'queued'
      detail = 'Job_Queue held an entry that is not a job id; queue job files with `jobmanager queue FILE`'
    end
    if state == 'queued' then
      local sweep = ARGV[i + 6]
      if location ~= '' and sweep ~= '' then
        if detail ~= '' then redis.call('HSET', sweepKey(prefix, sweep), 'spec', detail) end
        redis.call('HSET', key, 'location', location,
          'pollMs', ARGV[i + 3], 'timeoutMs', ARGV[i + 4], 'retries', ARGV[i + 5])
        redis.call('LPUSH', queueOf[location], entry)
        routed = routed + 1
      elseif location ~= '' then
        redis.call('HSET', key, 'location', location, 'spec', detail,
          'pollMs', ARGV[i + 3], 'timeoutMs', ARGV[i + 4], 'retries', ARGV[i + 5])
        redis.call('LPUSH', queueOf[location], entry)
        routed = routed + 1
      else
        redis.call('HSET', key, 'state', 'rejected', 'reason', detail, 'endedAt', now)
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'job', entry, 'state', 'rejected', 'reason', detail)
        rejected = rejected + 1
      end
    end
  end
end
return {routed, rejected}
