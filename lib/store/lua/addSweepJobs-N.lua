--[[
  addSweepJobs: write one batch of a sweep's jobs (ids reserved by addSweep-4.lua) and put them
  on Job_Queue (state: queued). A job holds its name (`<sweep name>[i]`), its row (`params`,
  JSON) and the id of its sweep, whose hash holds the definition they share. The batch is
  written whole or not at all (one script), and marks itself done in the sweep's hash
  (`batch:<from>`): the same batch sent again (after a lost reply, or by a `queue` retried
  after a crash) writes nothing, even for a job that was purged since.

  KEYS[1] Job_Queue   KEYS[2] Jobs   KEYS[3] Events   KEYS[4] Signal:manager
  KEYS[5] sweep:<first id>
  KEYS[6 ..] job:<id> of each job of the batch, in order (ids first + from, first + from + 1, …)
  ARGV[1] now (ms)    ARGV[2] the sweep's first id   ARGV[3] the sweep's name   ARGV[4] ClassType
  ARGV[5] from: the index in the sweep of the batch's first job
  ARGV[6 ..] each job's row (JSON object of strings), in order
  Returns: how many jobs were written (0: the batch was written before)
  Events: one `queued` entry for the batch, with `jobs` = its id range (first-last) in place of
  `job` (lib/store/events.ts reads it as one event per job)
]]

local now, first, name, classType, from = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local count = #ARGV - 5
if count <= 0 or redis.call('HSETNX', KEYS[5], 'batch:' .. from, count) == 0 then return 0 end
local sweep = ARGV[2]
local ids = {}
for j = 1, count do
  local index = from + j - 1
  local id = string.format('%d', first + index)
  ids[j] = id
  redis.call('HSET', KEYS[5 + j], 'id', id, 'name', name .. '[' .. index .. ']', 'classType', classType,
    'sweep', sweep, 'params', ARGV[5 + j], 'state', 'queued', 'queuedAt', now, 'attempt', 1, 'run', 0)
end
-- Many members per command, in slices that stay within what unpack() may spread.
local SLICE = 1000
for at = 1, count, SLICE do
  local last = math.min(at + SLICE - 1, count)
  local members = {}
  for j = at, last do
    members[#members + 1] = ids[j]
    members[#members + 1] = ids[j]
  end
  redis.call('ZADD', KEYS[2], unpack(members))
  redis.call('LPUSH', KEYS[1], unpack(ids, at, last))
end
-- The manager's token before the event: Redis serves blocked clients in the order their keys
-- were written to, so the manager (which starts the job) wakes before the event readers.
if redis.call('LLEN', KEYS[4]) == 0 then redis.call('LPUSH', KEYS[4], 1) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'jobs', ids[1] .. '-' .. ids[count], 'state', 'queued')
return count
