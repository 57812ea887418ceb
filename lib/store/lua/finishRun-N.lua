--[[
  finishRun: runs ended (the fetcher saw them end, or gave up on them: a launch that failed, a
  host that went down). For each, in one step: the job leaves Running_Queue, the run is appended
  to job:<id>:runs, and the job becomes succeeded, failed or cancelled -- or, when it failed and
  has retries left (and was not cancelled), queued again after a backoff (it waits in Delayed;
  the manager re-queues it). Its slot is freed and handed at once to the next job waiting for
  that location (includes/grantFrom.lua; not if it is a host marked down in HostState), so a
  slot never sits idle between one job and the next.
  A run that is not the job's current one, or a job already ended, is ignored: replaying is
  harmless.

  KEYS[1] Running_Queue:<node>   KEYS[2] Delayed   KEYS[3] Events   KEYS[4] Granted_Queue:<node>
  KEYS[5] Signal:manager  KEYS[6] HostState
  KEYS[7] key prefix (includes/keys.lua: the slot set a job holds, the records of jobs granted
    a freed slot)
  then the pools' slot sets and queues (includes/pools.lua): where a freed slot may go
  then per run, in the order of the run tuples: job:<id>, job:<id>:runs
  ARGV[1] now (ms)   ARGV[2] the recording node (a freed slot it hands on is granted by it)
  ARGV[3 ..] the pools (includes/pools.lua)
  then tuples of 9 per run: id, run, outcome (succeeded|failed|cancelled|interrupted), exit
    code ('' if none), reason, result JSON ('' if none), steps JSON ('' to keep), retry backoff
    base (ms), start time (ms, '' if unknown: a run can end before markRunning saw it start)
    'interrupted' means the run was cut short without the job's fault (a thread job whose thread
    died, a job that may run on any host whose host went down): it runs again at once and does
    not use up a retry.
  Returns: {runs recorded, jobs granted the freed slots}
  Events: succeeded | failed | cancelled | queued (a retry), with the job's `class`, the run's
    length `took` (ms) and, for a first run that went from granted to its end, `waited` (ms from
    queued to started); granted
]]
-- @include keys
-- @include pools
-- @include grantFrom
-- @include heldSlot

local prefix, now, node = KEYS[7], tonumber(ARGV[1]), ARGV[2]
local _, poolAt, k, a = readPools(8, 3)

local recorded, handedOff, retried = 0, 0, false
for i = a, #ARGV, 9 do
  local id, run, outcome, exitCode, reason, result, steps, backoff, runStartedAt =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], tonumber(ARGV[i + 7]), ARGV[i + 8]
  local key, runsKey = KEYS[k], KEYS[k + 1]
  k = k + 2
  local state, current, attempt, retries, slot, host, cancelRequested, startedAt, location, owner, classType, queuedAt =
    unpack(redis.call('HMGET', key, 'state', 'run', 'attempt', 'retries', 'slot', 'host', 'cancelRequested', 'startedAt', 'location', 'node', 'classType', 'queuedAt'))
  if (state == 'granted' or state == 'running') and current == run then
    attempt = tonumber(attempt) or 1
    if runStartedAt ~= '' then startedAt = runStartedAt end
    if cancelRequested and outcome ~= 'succeeded' then outcome = 'cancelled' end
    redis.call('ZREM', KEYS[1], id)
    -- A remote run's end may be read by another node than the one watching it (both follow the host).
    if owner and owner ~= node then redis.call('ZREM', runningQueueKey(prefix, owner), id) end
    redis.call('RPUSH', runsKey, cjson.encode({
      run = tonumber(run), attempt = attempt, outcome = outcome, exitCode = exitCode, reason = reason,
      startedAt = tonumber(startedAt), endedAt = now, location = location }))
    redis.call('HDEL', key, 'slot', 'pid', 'deadline', 'timedOut', 'killAt')
    if startedAt then redis.call('HSET', key, 'startedAt', startedAt) end
    if steps ~= '' then redis.call('HSET', key, 'steps', steps) end
    -- What the web page's histograms need, in the event (no read of the record): the run's
    -- length, and the first run's wait when its start was never recorded as an event of its own.
    local timing = { 'class', classType or '' }
    if startedAt then
      timing[#timing + 1] = 'took'
      timing[#timing + 1] = math.max(0, now - tonumber(startedAt))
      if state == 'granted' and run == '1' and queuedAt then
        timing[#timing + 1] = 'waited'
        timing[#timing + 1] = math.max(0, tonumber(startedAt) - tonumber(queuedAt))
      end
    end
    local again = outcome == 'interrupted' or (outcome == 'failed' and attempt <= (tonumber(retries) or 0))
    if again then
      local delay = 0
      if outcome == 'failed' then
        delay = math.min(backoff * (2 ^ (attempt - 1)), 300000)
        redis.call('HSET', key, 'attempt', attempt + 1)
      end
      redis.call('HSET', key, 'state', 'queued', 'retryAt', now + delay, 'reason', reason)
      redis.call('ZADD', KEYS[2], now + delay, id)
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued', 'run', run, 'reason', reason, unpack(timing))
      retried = true
    else
      redis.call('HSET', key, 'state', outcome, 'endedAt', now, 'exitCode', exitCode, 'reason', reason)
      if result ~= '' then redis.call('HSET', key, 'result', result) end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', outcome, 'run', run, 'reason', reason, unpack(timing))
    end
    local held = heldSlot(prefix, slot, host)
    if held then
      redis.call('SREM', slotSetKey(prefix, held), id)
      local pool = poolAt[held]
      if pool then handedOff = handedOff + grantFrom(prefix, now, pool, 1, KEYS[4], KEYS[3], KEYS[6], node) end
    end
    recorded = recorded + 1
  end
end
-- A retry waits in Delayed: the manager must learn its due time.
if retried and redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
return {recorded, handedOff}
