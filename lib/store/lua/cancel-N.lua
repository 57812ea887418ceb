--[[
  cancel: cancel jobs. A job that has not started ends at once (it leaves whichever queue holds
  it and gives back its slot; the manager is signalled to use that slot). A job that is being
  launched or is running is marked cancelRequested and made due in Running_Queue now; the
  fetcher then kills its process group and records it as cancelled when it ends.

  The granted and running queues are those of the node the job's record names (`node`); a
  record from before nodes has none and is in the queues one supervisor used then, KEYS[2] and
  KEYS[4].

  KEYS[1] Job_Queue   KEYS[2] Granted_Queue (no node)   KEYS[3] Delayed   KEYS[4] Running_Queue (no node)
  KEYS[5] Events      KEYS[6] Signal:fetcher (no node; else Signal:fetcher:<node>)   KEYS[7] Signal:manager
  KEYS[8] key prefix (includes/keys.lua: the queue and slot set a job's record names)
  KEYS[9 ..] job:<id> of each id, in order
  ARGV[1] now (ms)    ARGV[2 ..] job ids
  Returns: one result per id: 'cancelled' | 'cancelling' | 'unknown' | the final state it had
  Events: cancelled
]]
-- @include keys
-- @include heldSlot

local prefix, now = KEYS[8], ARGV[1]
local results = {}

-- Granted_Queue holds launch payloads that start with the job id and a newline; it is short
-- (at most the number of slots).
local function removeGranted(id, node)
  local queue = KEYS[2]
  if node then queue = grantedQueueKey(prefix, node) end
  for _, payload in ipairs(redis.call('LRANGE', queue, 0, -1)) do
    if string.sub(payload, 1, #id + 1) == id .. '\n' then
      return redis.call('LREM', queue, 1, payload) > 0
    end
  end
  return false
end
-- Queued jobs leave their queues at the end, all at once: one LREM per job walks the whole
-- list, and cancelling a sweep of 100,000 queued jobs that way took 100,000 walks of 100,000
-- entries. A few ids still go by LREM; more are filtered out in one pass over the list.
local leaving = {}
local function leave(queue, id)
  if not leaving[queue] then leaving[queue] = { n = 0, ids = {} } end
  if not leaving[queue].ids[id] then
    leaving[queue].ids[id] = true
    leaving[queue].n = leaving[queue].n + 1
  end
end
local function removeLeaving()
  for queue, gone in pairs(leaving) do
    if gone.n <= 8 then
      for id in pairs(gone.ids) do redis.call('LREM', queue, 0, id) end
    else
      local kept = {}
      for _, id in ipairs(redis.call('LRANGE', queue, 0, -1)) do
        if not gone.ids[id] then kept[#kept + 1] = id end
      end
      redis.call('DEL', queue)
      for at = 1, #kept, 1000 do redis.call('RPUSH', queue, unpack(kept, at, math.min(at + 999, #kept))) end
    end
  end
end

for i = 2, #ARGV do
  local id, key = ARGV[i], KEYS[7 + i]
  local state, location, slot, host, node = unpack(redis.call('HMGET', key, 'state', 'location', 'slot', 'host', 'node'))
  local result
  if not state then
    result = 'unknown'
  elseif state == 'queued' or (state == 'granted' and removeGranted(id, node)) then
    local held = heldSlot(prefix, slot, host)
    leave(KEYS[1], id)
    if location then leave(locationQueueKey(prefix, location), id) end
    redis.call('ZREM', KEYS[3], id)
    if held then redis.call('SREM', slotSetKey(prefix, held), id) end
    redis.call('HDEL', key, 'slot', 'retryAt')
    redis.call('HSET', key, 'state', 'cancelled', 'endedAt', now, 'reason', 'cancelled before it started', 'cancelRequested', now)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'cancelled')
    if held and redis.call('LLEN', KEYS[7]) == 0 then redis.call('LPUSH', KEYS[7], 1) end
    result = 'cancelled'
  elseif state == 'granted' or state == 'running' then
    if not redis.call('HGET', key, 'cancelRequested') then
      redis.call('HSET', key, 'cancelRequested', now)
    end
    if state == 'running' then
      local running = KEYS[4]
      if node then running = runningQueueKey(prefix, node) end
      redis.call('ZADD', running, now, id)
    end
    -- The fetcher of the job's node kills it: woken by its own list (any node's takes Signal:fetcher).
    local wake = KEYS[6]
    if node then wake = nodeSignalKey(prefix, 'fetcher', node) end
    if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, 1) end
    result = 'cancelling'
  else
    result = state
  end
  results[#results + 1] = result
end
removeLeaving()
return results
