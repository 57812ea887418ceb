--[[
  addSweep: reserve the ids of a sweep (one job file with `Each:`, lib/jobfile/sweep.ts) and
  store its shared definition once, in sweep:<first id>; its jobs are written afterwards, a
  batch at a time, by addSweepJobs-N.lua, each holding only its row. The ids are reserved in one
  INCRBY so that a sweep is one range (`12-100011`) whatever else is queued meanwhile.
  Idempotent per submission token: a `queue` retried after a lost reply (or a crash between
  batches) gets the same range back, and its batches then skip the jobs already written.

  KEYS[1] NextId      KEYS[2] submission:<token>      KEYS[3] Named:<name>
  KEYS[4] key prefix (includes/keys.lua: sweep:<first id>)
  ARGV[1] now (ms)    ARGV[2] count (jobs)   ARGV[3] name    ARGV[4] ClassType
  ARGV[5] job file path                      ARGV[6] base dir
  ARGV[7] job definition (JSON of the parsed YAML, without Each)
  Returns: the first id (the sweep's id); its jobs are first .. first + count - 1
]]
-- @include keys

local known = redis.call('GET', KEYS[2])
if known then return known end

local count = tonumber(ARGV[2])
local last = redis.call('INCRBY', KEYS[1], count)
local first = tostring(last - count + 1)
redis.call('HSET', sweepKey(KEYS[4], first),
  'first', first, 'count', count, 'name', ARGV[3], 'classType', ARGV[4], 'file', ARGV[5],
  'baseDir', ARGV[6], 'raw', ARGV[7], 'queuedAt', ARGV[1])
redis.call('ZADD', KEYS[3], first, first .. '-' .. tostring(last))
redis.call('SET', KEYS[2], first, 'EX', 86400)
return first
