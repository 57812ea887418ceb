--[[
  addSweepJobs: write one batch of a sweep's jobs (ids reserved by addSweep-4.lua) and put them
  on Job_Queue (state: queued). A job holds its name (`<sweep name>[i]`), its row (`params`,
  JSON) and the id of its sweep, whose hash holds the definition they share. A job already
  written (a batch sent again after a lost reply, or a retried `queue`) is skipped: a batch is
  idempotent, whatever happened to its jobs since.

  KEYS[1] Job_Queue   KEYS[2] Jobs   KEYS[3] Events   KEYS[4] Signal:manager
  KEYS[5 ..] job:<id> of each job, in order
  ARGV[1] now (ms)    ARGV[2] the sweep's first id   ARGV[3] the sweep's name   ARGV[4] ClassType
  then per job: id, index in the sweep, row (JSON object of strings)
  Returns: how many jobs were written (not already there)
  Events: queued
]]

local now, sweep, name, classType = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local added = 0
local j = 4
for i = 5, #ARGV, 3 do
  j = j + 1
  local id, index, params = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = KEYS[j]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'id', id, 'name', name .. '[' .. index .. ']', 'classType', classType,
      'sweep', sweep, 'params', params, 'state', 'queued', 'queuedAt', now, 'attempt', 1, 'run', 0)
    redis.call('ZADD', KEYS[2], id, id)
    redis.call('LPUSH', KEYS[1], id)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued')
    added = added + 1
  end
end
if added > 0 and redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end
return added
