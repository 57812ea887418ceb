--[[
  retry: run failed or cancelled jobs again, by hand (the web page's retry button). Each goes
  back to `queued` with a fresh attempt count (attempt 1 of 1 + Retries), its last outcome
  cleared (reason, exit code, result, steps, end time), and joins the end of its location's
  queue; a job that was never routed (cancelled while in Job_Queue) goes back to Job_Queue for
  the manager to check again. Its run numbers go on counting, so the new run never meets the
  files or run log lines of an old one; its finished runs stay in job:<id>:runs. The job records
  when and how often it was retried (retriedAt, manualRetries), and the Events entry says from
  which state.
  A job in any other state is left as it is: retry is no way to run a job twice at once.

  KEYS[1] Job_Queue   KEYS[2] Events   KEYS[3] Signal:manager
  KEYS[4] key prefix (includes/keys.lua: the queue a job's record names)
  KEYS[5 .. 4+n] job:<id> of each id, in order
  KEYS[5+n .. 4+2n] job:<id>:runs of each id, in order: a compacted job's run folded into its
    record (soleRun, compactJobs-N.lua) goes back there, before the fields it is read from go
  ARGV[1] now (ms)    ARGV[2 ..] job ids
  Returns: one result per id: 'queued' | 'unknown' | the state it had (not retried)
  Events: queued (reason: retried by hand, was <state>)
]]
-- @include keys

local prefix, now = KEYS[4], ARGV[1]
local n = #ARGV - 1
local results = {}
local any = false
for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[3 + i]
  local state, location, spec = unpack(redis.call('HMGET', key, 'state', 'location', 'spec'))
  local result
  if not state then
    result = 'unknown'
  elseif state == 'failed' or state == 'cancelled' then
    if redis.call('HGET', key, 'soleRun') then
      local run, attempt, exitCode, reason, startedAt, endedAt, runLocation =
        unpack(redis.call('HMGET', key, 'run', 'attempt', 'exitCode', 'reason', 'startedAt', 'endedAt', 'location'))
      redis.call('RPUSH', KEYS[3 + n + i], cjson.encode({ run = tonumber(run), attempt = tonumber(attempt) or 1,
        outcome = state, exitCode = exitCode or '', reason = reason or '', startedAt = tonumber(startedAt),
        endedAt = tonumber(endedAt), location = runLocation or nil }))
      redis.call('HDEL', key, 'soleRun')
    end
    redis.call('HDEL', key, 'reason', 'exitCode', 'result', 'steps', 'endedAt', 'startedAt', 'grantedAt',
      'cancelRequested', 'retryAt', 'pid', 'deadline', 'timedOut', 'killAt', 'slot')
    redis.call('HSET', key, 'state', 'queued', 'attempt', 1, 'queuedAt', now, 'retriedAt', now)
    redis.call('HINCRBY', key, 'manualRetries', 1)
    if location and spec then
      redis.call('LPUSH', locationQueueKey(prefix, location), id)
    else
      redis.call('LPUSH', KEYS[1], id)
    end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued', 'reason', 'retried by hand, was ' .. state)
    any = true
    result = 'queued'
  else
    result = state
  end
  results[#results + 1] = result
end
if any and redis.call('LLEN', KEYS[3]) == 0 then redis.call('LPUSH', KEYS[3], 1) end
return results
