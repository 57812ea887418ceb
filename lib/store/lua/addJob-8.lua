--[[
  addJob: record a new job and put it on Job_Queue (state: queued).
  Idempotent per submission token: a retried call after a lost reply returns the same id.

  KEYS[1] Job_Queue       KEYS[2] Jobs       KEYS[3] NextId
  KEYS[4] Events          KEYS[5] Signal:manager
  KEYS[6] submission:<token>                 KEYS[7] key prefix (includes/keys.lua: job:<new id>)
  KEYS[8] Named:<name>    (the name index that selectors resolve names with)
  ARGV[1] now (ms)        ARGV[2] name       ARGV[3] ClassType
  ARGV[4] job file path   ARGV[5] base dir   ARGV[6] job definition (JSON of the parsed YAML)
  Returns: the job id
  Events: queued
]]
-- @include keys

local known = redis.call('GET', KEYS[6])
if known then return known end

local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', jobKey(KEYS[7], id),
  'id', id, 'name', ARGV[2], 'classType', ARGV[3], 'file', ARGV[4], 'baseDir', ARGV[5],
  'raw', ARGV[6], 'state', 'queued', 'queuedAt', ARGV[1], 'attempt', 1, 'run', 0)
redis.call('ZADD', KEYS[2], id, id)
redis.call('ZADD', KEYS[8], id, id)
redis.call('LPUSH', KEYS[1], id)
redis.call('SET', KEYS[6], id, 'EX', 86400)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'queued')
if redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
return id
