--[[
  grant: the old JobManager's grant step. First, retries whose backoff is over go back to the
  front of their location's queue, the one due earliest in front. Then, for each location the
  manager watches, jobs are taken from its queue while the location has room: each takes a slot
  (it joins the slot set, e.g. LocalJobs) and goes to Granted_Queue for the starter (see
  includes/grantFrom.lua). The slot is held until the job ends, so the limit holds at every
  instant. A host marked down in HostState is granted nothing (read by grantFrom).

  KEYS[1] Granted_Queue   KEYS[2] Delayed   KEYS[3] Events
  ARGV[1] key prefix      ARGV[2] now (ms)  ARGV[3] most jobs to grant in this call
  ARGV[4..] tuples of 4: location, its slot set key, its slot limit, its queues (space-separated
    location names, tried in order)
  Returns: {granted, ms until the next delayed retry is due (-1: none)}
  Events: granted
]]
-- @include grantFrom

local prefix, now, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
-- RPUSH puts each at the front (grantFrom pops from the right), so the latest due goes in first.
for i = #due, 1, -1 do
  local id = due[i]
  redis.call('ZREM', KEYS[2], id)
  local jobKey = prefix .. 'job:' .. id
  local state, location = unpack(redis.call('HMGET', jobKey, 'state', 'location'))
  if state == 'queued' and location then
    redis.call('HDEL', jobKey, 'retryAt')
    redis.call('RPUSH', prefix .. 'Job_Queue:' .. location, id)
  end
end

local granted = 0
for i = 4, #ARGV, 4 do
  local queues = {}
  for name in string.gmatch(ARGV[i + 3], '%S+') do queues[#queues + 1] = prefix .. 'Job_Queue:' .. name end
  granted = granted + grantFrom(prefix, now, queues, ARGV[i + 1], tonumber(ARGV[i + 2]), budget - granted, KEYS[1], KEYS[3], ARGV[i])
end

local nextDue = -1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then nextDue = math.max(0, tonumber(first[2]) - now) end
return {granted, nextDue}
