--[[
  grant: the old JobManager's grant step. First, retries whose backoff is over go back to the
  front of their location's queue, the one due earliest in front. Then, for each location the
  manager watches, jobs are taken from its queue while the location has room: each takes a slot
  (it joins the slot set, e.g. LocalJobs) and goes to Granted_Queue for the starter (see
  includes/grantFrom.lua). The slot is held until the job ends, so the limit holds at every
  instant. A host marked down in HostState is granted nothing (read by grantFrom).

  KEYS[1] Granted_Queue:<node>   KEYS[2] Delayed   KEYS[3] Events   KEYS[4] HostState
  KEYS[5] key prefix (includes/keys.lua: the record and queue of a retry taken from Delayed)
  KEYS[6 ..] the pools' slot sets and queues (includes/pools.lua)
  ARGV[1] now (ms)        ARGV[2] most jobs to grant in this call
  ARGV[3] the granting node (its name: recorded as the job's `node`)
  ARGV[4 ..] the pools (includes/pools.lua), in the order they are served
  Returns: {granted, ms until the next delayed retry is due (-1: none)}
  Events: granted
]]
-- @include keys
-- @include pools
-- @include grantFrom

local prefix, now, budget, node = KEYS[5], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
-- RPUSH puts each at the front (grantFrom pops from the right), so the latest due goes in first.
for i = #due, 1, -1 do
  local id = due[i]
  redis.call('ZREM', KEYS[2], id)
  local key = jobKey(prefix, id)
  local state, location = unpack(redis.call('HMGET', key, 'state', 'location'))
  if state == 'queued' and location then
    redis.call('HDEL', key, 'retryAt')
    redis.call('RPUSH', locationQueueKey(prefix, location), id)
  end
end

local pools = readPools(6, 4)
local granted = 0
for _, pool in ipairs(pools) do
  granted = granted + grantFrom(prefix, now, pool, budget - granted, KEYS[1], KEYS[3], KEYS[4], node)
end

local nextDue = -1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then nextDue = math.max(0, tonumber(first[2]) - now) end
return {granted, nextDue}
