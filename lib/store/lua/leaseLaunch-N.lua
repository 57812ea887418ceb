--[[
  leaseLaunch: the starter is about to send a launch batch to a host (lib/backends/remote/lease.ts).
  In one step: a host marked down takes no launch (the fetcher may be giving up on its runs,
  counting on no launch lease newer than the moment it marked the host down); otherwise the
  launch lease is recorded (HostLeases[host] = now: the fetcher gives up on runs there no sooner
  than the fence bound after it) and the runs of the batch that are still their jobs' current
  ones are returned: a run given up on meanwhile must never start.

  KEYS[1] HostState   KEYS[2] HostLeases   KEYS[3..] job:<id> of each run, in the order of ARGV
  ARGV[1] now (ms)   ARGV[2] host name
  ARGV[3..] pairs: job id, run
  Returns: false when the host is down; else the ids of the jobs whose run is current (granted
    or running at that run, on that host)
]]
local now, host = ARGV[1], ARGV[2]
local state = redis.call('HGET', KEYS[1], host)
if state and cjson.decode(state).state == 'down' then return false end
redis.call('HSET', KEYS[2], host, now)
local current = {}
for i = 3, #ARGV, 2 do
  local id, run = ARGV[i], ARGV[i + 1]
  local jobState, jobRun, where = unpack(redis.call('HMGET', KEYS[3 + (i - 3) / 2], 'state', 'run', 'host'))
  if (jobState == 'granted' or jobState == 'running') and jobRun == run and where == 'host:' .. host then
    current[#current + 1] = id
  end
end
return current
