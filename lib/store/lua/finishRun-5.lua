--[[
  finishRun: runs ended (the fetcher's isFinished() said so). For each, in one step: the job
  leaves Running_Queue, the run is appended to job:<id>:runs, and the job becomes succeeded,
  failed or cancelled -- or, when it failed and has retries left (and was not cancelled),
  queued again after a backoff (it waits in Delayed; the manager re-queues it). Its slot is
  freed and handed at once to the next job waiting for that location (includes/grantFrom.lua;
  not if it is a host marked down in HostState), so a slot never sits idle between one job and
  the next.
  A run that is not the job's current one, or a job already ended, is ignored: replaying is
  harmless.

  KEYS[1] Running_Queue   KEYS[2] Delayed   KEYS[3] Events   KEYS[4] Granted_Queue
  KEYS[5] Signal:manager
  ARGV[1] key prefix      ARGV[2] now (ms)
  ARGV[3] number of slot pools P, then P tuples of 4: slot set key, slot limit, its queues
    (space-separated location names, tried in order), its location -- where a freed slot may go
  then tuples of 9 per run: id, run, outcome (succeeded|failed|cancelled|interrupted), exit
    code ('' if none), reason, result JSON ('' if none), steps JSON ('' to keep), retry backoff
    base (ms), start time (ms, '' if unknown: a run can end before markRunning saw it start)
    'interrupted' means the run was cut short by the supervisor itself (a thread job whose
    thread died): it runs again at once and does not use up a retry.
  Returns: {runs recorded, jobs granted the freed slots}
  Events: succeeded | failed | cancelled | queued (a retry) | granted
]]
-- @include grantFrom

local prefix, now = ARGV[1], tonumber(ARGV[2])
local pools = {}
local first = 4 + 4 * tonumber(ARGV[3])
for i = 4, first - 1, 4 do
  local queues = {}
  for name in string.gmatch(ARGV[i + 2], '%S+') do queues[#queues + 1] = prefix .. 'Job_Queue:' .. name end
  pools[ARGV[i]] = { limit = tonumber(ARGV[i + 1]), queues = queues, location = ARGV[i + 3] }
end

local recorded, handedOff, retried = 0, 0, false
for i = first, #ARGV, 9 do
  local id, run, outcome, exitCode, reason, result, steps, backoff, runStartedAt =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], tonumber(ARGV[i + 7]), ARGV[i + 8]
  local jobKey = prefix .. 'job:' .. id
  local state, current, attempt, retries, slot, cancelRequested, startedAt, location =
    unpack(redis.call('HMGET', jobKey, 'state', 'run', 'attempt', 'retries', 'slot', 'cancelRequested', 'startedAt', 'location'))
  if (state == 'granted' or state == 'running') and current == run then
    attempt = tonumber(attempt) or 1
    if runStartedAt ~= '' then startedAt = runStartedAt end
    if cancelRequested and outcome ~= 'succeeded' then outcome = 'cancelled' end
    redis.call('ZREM', KEYS[1], id)
    redis.call('RPUSH', prefix .. 'job:' .. id .. ':runs', cjson.encode({
      run = tonumber(run), attempt = attempt, outcome = outcome, exitCode = exitCode, reason = reason,
      startedAt = tonumber(startedAt), endedAt = now, location = location }))
    redis.call('HDEL', jobKey, 'slot', 'pid', 'deadline', 'timedOut', 'killAt')
    if startedAt then redis.call('HSET', jobKey, 'startedAt', startedAt) end
    if steps ~= '' then redis.call('HSET', jobKey, 'steps', steps) end
    local again = outcome == 'interrupted' or (outcome == 'failed' and attempt <= (tonumber(retries) or 0))
    if again then
      local delay = 0
      if outcome == 'failed' then
        delay = math.min(backoff * (2 ^ (attempt - 1)), 300000)
        redis.call('HSET', jobKey, 'attempt', attempt + 1)
      end
      redis.call('HSET', jobKey, 'state', 'queued', 'retryAt', now + delay, 'reason', reason)
      redis.call('ZADD', KEYS[2], now + delay, id)
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued', 'run', run, 'reason', reason)
      retried = true
    else
      redis.call('HSET', jobKey, 'state', outcome, 'endedAt', now, 'exitCode', exitCode, 'reason', reason)
      if result ~= '' then redis.call('HSET', jobKey, 'result', result) end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', outcome, 'run', run, 'reason', reason)
    end
    if slot then
      redis.call('SREM', slot, id)
      local pool = pools[slot]
      if pool then handedOff = handedOff + grantFrom(prefix, now, pool.queues, slot, pool.limit, 1, KEYS[4], KEYS[3], pool.location) end
    end
    recorded = recorded + 1
  end
end
-- A retry waits in Delayed: the manager must learn its due time.
if retried and redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
return {recorded, handedOff}
