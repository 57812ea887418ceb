--[[
  grant: the old JobManager's grant step. First, retries whose backoff is over go back to the
  front of their location's queue. Then, for each location the manager watches, jobs are taken
  from Job_Queue:<location> while the location has room: each one takes a slot (it joins the
  slot set, e.g. LocalJobs) and goes to Granted_Queue for the starter. The slot is held until
  the job ends, so the limit holds at every instant.

  KEYS[1] Granted_Queue   KEYS[2] Delayed   KEYS[3] Events   KEYS[4] Signal:starter
  ARGV[1] key prefix      ARGV[2] now (ms)  ARGV[3] most jobs to grant in this call
  ARGV[4..] triples: location, its slot set key, its slot limit
  Returns: {granted, ms until the next delayed retry is due (-1: none)}
  Events: granted
]]
local prefix, now, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local jobKey = prefix .. 'job:' .. id
  local state, location = unpack(redis.call('HMGET', jobKey, 'state', 'location'))
  if state == 'queued' and location then
    redis.call('HDEL', jobKey, 'retryAt')
    redis.call('RPUSH', prefix .. 'Job_Queue:' .. location, id)
  end
end

local granted = 0
for i = 4, #ARGV, 3 do
  local location, slotKey, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local queue = prefix .. 'Job_Queue:' .. location
  local room = limit - redis.call('SCARD', slotKey)
  while room > 0 and granted < budget do
    local id = redis.call('RPOP', queue)
    if not id then break end
    local jobKey = prefix .. 'job:' .. id
    if redis.call('HGET', jobKey, 'state') == 'queued' then
      redis.call('SADD', slotKey, id)
      redis.call('HSET', jobKey, 'state', 'granted', 'grantedAt', now, 'slot', slotKey)
      redis.call('LPUSH', KEYS[1], id)
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'granted', 'location', location)
      room = room - 1
      granted = granted + 1
    end
  end
end
if granted > 0 and redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end

local nextDue = -1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then nextDue = math.max(0, tonumber(first[2]) - now) end
return {granted, nextDue}
