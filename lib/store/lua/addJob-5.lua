--[[
  addJob: record a new job and put it on Job_Queue (state: queued).
  Idempotent per submission token: a retried call after a lost reply returns the same id.

  KEYS[1] Job_Queue       KEYS[2] Jobs       KEYS[3] NextId
  KEYS[4] Events          KEYS[5] Signal:manager
  ARGV[1] key prefix      ARGV[2] submission token     ARGV[3] now (ms)
  ARGV[4] name            ARGV[5] ClassType            ARGV[6] job file path
  ARGV[7] base dir        ARGV[8] job definition (JSON of the parsed YAML)
  Returns: the job id
  Events: queued
]]
local prefix = ARGV[1]
local tokenKey = prefix .. 'submission:' .. ARGV[2]
local known = redis.call('GET', tokenKey)
if known then return known end

local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', prefix .. 'job:' .. id,
  'id', id, 'name', ARGV[4], 'classType', ARGV[5], 'file', ARGV[6], 'baseDir', ARGV[7],
  'raw', ARGV[8], 'state', 'queued', 'queuedAt', ARGV[3], 'attempt', 1, 'run', 0)
redis.call('ZADD', KEYS[2], id, id)
redis.call('LPUSH', KEYS[1], id)
redis.call('SET', tokenKey, id, 'EX', 86400)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued')
if redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
return id
