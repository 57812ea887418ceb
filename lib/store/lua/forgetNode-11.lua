--[[
  forgetNode: `jobmanager nodes forget NODE` -- a node that will not come back (its machine is
  gone) is forgotten, and what it held is settled, in one step:
    - jobs granted to it and not started (its Granted_Queue) go back to their queues
      (includes/giveBack.lua);
    - its local runs (the jobs holding its slots: started, or taken by its starter) are lost: each
      gets a run entry `interrupted` with the reason, and is queued again if it has retries left
      (using one, with the backoff) or else fails;
    - its remote runs (still running on their hosts) are watched by the adopting node from now on;
    - its lease, heartbeat record, run log list and queues are deleted.
  Refused while the node's lease is fresh (it is running: stop it first).

  KEYS[1] Nodes   KEYS[2] Granted_Queue:<node>   KEYS[3] Running_Queue:<node>   KEYS[4] LocalJobs:<node>
  KEYS[5] Runlogs:<node>   KEYS[6] Supervisor:<node>   KEYS[7] Events   KEYS[8] Delayed
  KEYS[9] Signal:manager   KEYS[10] key prefix (includes/keys.lua)   KEYS[11] Running_Queue:<adopter>
  ARGV[1] now (ms)   ARGV[2] node   ARGV[3] the lease (ms)   ARGV[4] retry backoff base (ms)
  ARGV[5] the adopting node
  Returns: {given back, queued again, failed, remote runs adopted}, or {-1, holder JSON} when the
  node's lease is fresh, or {-2} when no such node is known
  Events: queued | failed
]]
-- @include keys
-- @include heldSlot
-- @include giveBack

local now, node, leaseMs, backoff, adopter = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local prefix = KEYS[10]
local raw = redis.call('HGET', KEYS[1], node)
if not raw and redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]) == 0 then return {-2} end
if raw then
  local held = cjson.decode(raw)
  if held.status ~= 'stopped' and now - tonumber(held.renewedAt) < leaseMs then return {-1, raw} end
end
local reason = 'node ' .. node .. ' was forgotten (jobmanager nodes forget): its run is lost'
local given = giveBackGranted(prefix, now, KEYS[2], 'node ' .. node .. ' was forgotten: given to another node', KEYS[7])
local again, failed, adopted = 0, 0, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local key = jobKey(prefix, id)
  local state, run, attempt, retries, startedAt, location =
    unpack(redis.call('HMGET', key, 'state', 'run', 'attempt', 'retries', 'startedAt', 'location'))
  if state == 'granted' or state == 'running' then
    attempt = tonumber(attempt) or 1
    redis.call('RPUSH', jobRunsKey(prefix, id), cjson.encode({
      run = tonumber(run), attempt = attempt, outcome = 'interrupted', exitCode = '', reason = reason,
      startedAt = tonumber(startedAt), endedAt = now, location = location }))
    redis.call('HDEL', key, 'slot', 'pid', 'deadline', 'timedOut', 'killAt', 'node')
    if attempt <= (tonumber(retries) or 0) then
      local delay = math.min(backoff * (2 ^ (attempt - 1)), 300000)
      redis.call('HSET', key, 'state', 'queued', 'attempt', attempt + 1, 'retryAt', now + delay, 'reason', reason)
      redis.call('ZADD', KEYS[8], now + delay, id)
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued', 'run', run, 'reason', reason)
      again = again + 1
    else
      redis.call('HSET', key, 'state', 'failed', 'endedAt', now, 'exitCode', '', 'reason', reason)
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'failed', 'run', run, 'reason', reason)
      failed = failed + 1
    end
  end
  redis.call('ZREM', KEYS[3], id)
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local key = jobKey(prefix, id)
  if redis.call('HGET', key, 'state') == 'running' then
    redis.call('HSET', key, 'node', adopter)
    redis.call('ZADD', KEYS[11], now, id)
    adopted = adopted + 1
  end
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('HDEL', KEYS[1], node)
if (again > 0 or given > 0) and redis.call('LLEN', KEYS[9]) == 0 then redis.call('LPUSH', KEYS[9], 1) end
return {given, again, failed, adopted}
