--[[
  giveBack (included): a granted job that provably never started (its launch payload was taken
  out of a node's Granted_Queue in this same script) goes back to the front of its location's
  queue, queued, its slot freed: a later grant gives it a new run number, so the payload's run can
  never start. Returns true when it was given back, false when it had moved on.
  Events: queued (with the reason)
]]
local function giveBack(prefix, now, id, run, reason, events)
  local key = jobKey(prefix, id)
  local state, current, slot, host, location = unpack(redis.call('HMGET', key, 'state', 'run', 'slot', 'host', 'location'))
  if state ~= 'granted' or current ~= run or not location then return false end
  local held = heldSlot(prefix, slot, host)
  if held then redis.call('SREM', slotSetKey(prefix, held), id) end
  redis.call('HDEL', key, 'slot', 'node')
  redis.call('HSET', key, 'state', 'queued', 'reason', reason)
  -- grantFrom pops from the right: RPUSH puts it first in line.
  redis.call('RPUSH', locationQueueKey(prefix, location), id)
  redis.call('XADD', events, 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued', 'run', run, 'reason', reason)
  return true
end

-- Every payload of a node's Granted_Queue given back (the queue is emptied); returns how many.
local function giveBackGranted(prefix, now, grantedQueue, reason, events)
  local given = 0
  for _, payload in ipairs(redis.call('LRANGE', grantedQueue, 0, -1)) do
    local id, run = string.match(payload, '^(%d+)\n(%d+)\n')
    if id and giveBack(prefix, now, id, run, reason, events) then given = given + 1 end
  end
  redis.call('DEL', grantedQueue)
  return given
end
