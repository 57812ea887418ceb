--[[
  takeGranted: the starter takes granted jobs to launch. Each moves from Granted_Queue to the
  Starting set in the same step, with a new run number and the epoch of the launcher that will
  start it, so a crash between taking and launching leaves it in Starting, where recovery finds
  it (it is never lost, and the run number says whether that launch happened). The state stays
  granted until the fetcher sees the process start.

  KEYS[1] Granted_Queue   KEYS[2] Starting   KEYS[3] Events
  ARGV[1] key prefix      ARGV[2] now (ms)   ARGV[3] most jobs to take   ARGV[4] launcher epoch
  Returns: a list of {id, run, attempt, spec JSON, location, job definition JSON} per job taken
]]
local prefix, now, max, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
while #out < max do
  local id = redis.call('RPOP', KEYS[1])
  if not id then break end
  local jobKey = prefix .. 'job:' .. id
  if redis.call('HGET', jobKey, 'state') == 'granted' then
    local run = redis.call('HINCRBY', jobKey, 'run', 1)
    redis.call('HSET', jobKey, 'runlog', epoch, 'launchedAt', now)
    redis.call('SADD', KEYS[2], id)
    local attempt, spec, location, raw = unpack(redis.call('HMGET', jobKey, 'attempt', 'spec', 'location', 'raw'))
    out[#out + 1] = {id, run, attempt, spec, location, raw or ''}
  end
end
return out
