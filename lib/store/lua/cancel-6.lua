--[[
  cancel: cancel jobs. A job that has not started ends at once (it leaves whichever queue holds
  it and gives back its slot). A job that is starting or running is marked cancelRequested and
  made due in Running_Queue now; the fetcher then kills its process group and records it as
  cancelled when it ends.

  KEYS[1] Job_Queue   KEYS[2] Granted_Queue   KEYS[3] Delayed   KEYS[4] Running_Queue
  KEYS[5] Events      KEYS[6] Signal:fetcher
  ARGV[1] key prefix  ARGV[2] now (ms)   ARGV[3..] job ids
  Returns: one result per id: 'cancelled' | 'cancelling' | 'unknown' | the final state it had
  Events: cancelled
]]
local prefix, now = ARGV[1], ARGV[2]
local results = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local jobKey = prefix .. 'job:' .. id
  local state, location, slot = unpack(redis.call('HMGET', jobKey, 'state', 'location', 'slot'))
  local result
  if not state then
    result = 'unknown'
  elseif state == 'queued' or (state == 'granted' and redis.call('LREM', KEYS[2], 0, id) > 0) then
    redis.call('LREM', KEYS[1], 0, id)
    if location then redis.call('LREM', prefix .. 'Job_Queue:' .. location, 0, id) end
    redis.call('ZREM', KEYS[3], id)
    if slot then redis.call('SREM', slot, id) end
    redis.call('HDEL', jobKey, 'slot', 'retryAt')
    redis.call('HSET', jobKey, 'state', 'cancelled', 'endedAt', now, 'reason', 'cancelled before it started', 'cancelRequested', now)
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'cancelled')
    result = 'cancelled'
  elseif state == 'granted' or state == 'running' then
    if not redis.call('HGET', jobKey, 'cancelRequested') then
      redis.call('HSET', jobKey, 'cancelRequested', now)
    end
    if state == 'running' then redis.call('ZADD', KEYS[4], now, id) end
    redis.call('LPUSH', KEYS[6], 1)
    result = 'cancelling'
  else
    result = state
  end
  results[#results + 1] = result
end
return results
