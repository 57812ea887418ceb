--[[
  addJobs: record new jobs (one per job file) and put them on Job_Queue (state: queued), a few
  hundred per call: one round trip, one event per run of them, and one wake-up of the manager,
  rather than one of each per job.
  Idempotent per submission token (one per job): a job whose token is known (a retried call
  after a lost reply) is not written again, and its known id is returned in its place.

  KEYS[1] Job_Queue       KEYS[2] Jobs       KEYS[3] NextId
  KEYS[4] Events          KEYS[5] Signal:manager
  KEYS[6] key prefix (includes/keys.lua: job:<new id>)
  KEYS[5 + 2i] submission:<token of job i>   KEYS[6 + 2i] Named:<name of job i>  (i = 1 .. n)
  ARGV[1] now (ms)
  ARGV[2 + 5(i-1) ..] job i: name, ClassType, job file path, base dir, job definition (JSON of the parsed YAML)
  Returns: the jobs' ids, in order
  Events: queued, one entry per run of new jobs of one ClassType with consecutive ids: `job` =
  the id for a run of one, else `jobs` = first-last (lib/store/events.ts reads it as one event per job)
]]
-- @include keys

local now, prefix = ARGV[1], KEYS[6]
local n = (#KEYS - 6) / 2
local ids = {}
local runFirst, runLast, runClass = nil, nil, nil

local function closeRun()
  if not runFirst then return end
  if runFirst == runLast then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'job', runFirst, 'state', 'queued')
  else
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'jobs', runFirst .. '-' .. runLast, 'state', 'queued')
  end
  runFirst = nil
end

local added = 0
for i = 1, n do
  local token, named = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local name, classType, file, baseDir, raw = ARGV[2 + 5 * (i - 1)], ARGV[3 + 5 * (i - 1)], ARGV[4 + 5 * (i - 1)], ARGV[5 + 5 * (i - 1)], ARGV[6 + 5 * (i - 1)]
  local known = redis.call('GET', token)
  if known then
    ids[i] = known
  else
    local id = tostring(redis.call('INCR', KEYS[3]))
    redis.call('HSET', jobKey(prefix, id),
      'id', id, 'name', name, 'classType', classType, 'file', file, 'baseDir', baseDir,
      'raw', raw, 'state', 'queued', 'queuedAt', now, 'attempt', 1, 'run', 0)
    redis.call('ZADD', KEYS[2], id, id)
    redis.call('ZADD', named, id, id)
    redis.call('LPUSH', KEYS[1], id)
    redis.call('SET', token, id, 'EX', 86400)
    ids[i] = id
    added = added + 1
    if runFirst and (runClass ~= classType or tonumber(runLast) + 1 ~= tonumber(id)) then closeRun() end
    if not runFirst then runFirst, runClass = id, classType end
    runLast = id
  end
end
-- The manager's token before the events: Redis serves blocked clients in the order their keys
-- were written to, so the manager (which starts the jobs) wakes before the event readers.
if added > 0 and redis.call('LLEN', KEYS[5]) == 0 then redis.call('LPUSH', KEYS[5], 1) end
closeRun()
return ids
