--[[
  removeJobs: finished jobs removed for good (retention, `jobmanager purge`): the record, its
  runs list, its entry in Jobs and in the name index (Named:<name>). Only a job that is final now
  (succeeded, failed, cancelled, rejected) goes: one that was retried since it was chosen (queued,
  granted, running) is left as it is, and its state returned, so the caller keeps its files too.
  A sweep's job is in the name index through its sweep's range: the range and the sweep's shared
  definition (sweep:<first>) go with the sweep's last job, once every batch of it was written (a
  sweep still being queued keeps them). Nothing else holds a final job's id (the queues, Delayed,
  Running_Queue and the slot sets hold jobs that are not final). Its Events entries stay: the
  stream is capped and read as history.

  KEYS[1] Jobs
  KEYS[2] key prefix (includes/keys.lua: Named:<name> and sweep:<first> of a job's record)
  KEYS[3 .. 2+2n] job:<id>, job:<id>:runs of each job, in order
  ARGV[1 .. n] their ids
  Returns: one result per id: 'removed' | 'unknown' | the state it has (not final: kept)
]]
-- @include keys

local FINAL = { succeeded = true, failed = true, cancelled = true, rejected = true }
local prefix = KEYS[2]

-- The sweep's range and definition, once none of its jobs is left and all were written.
local function forgetSweepIfDone(sweep)
  local key = sweepKey(prefix, sweep)
  local flat = redis.call('HGETALL', key)
  local h, written = {}, 0
  for j = 1, #flat, 2 do
    h[flat[j]] = flat[j + 1]
    if string.sub(flat[j], 1, 6) == 'batch:' then written = written + (tonumber(flat[j + 1]) or 0) end
  end
  local first, count = tonumber(h.first), tonumber(h.count)
  if not first or not count or written < count then return end
  local last = first + count - 1
  if #redis.call('ZRANGEBYSCORE', KEYS[1], first, last, 'LIMIT', 0, 1) > 0 then return end
  if h.name then redis.call('ZREM', namedKey(prefix, h.name), h.first .. '-' .. string.format('%d', last)) end
  redis.call('DEL', key)
end

local results = {}
for i = 1, #ARGV do
  local id, key, runsKey = ARGV[i], KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local state, name, sweep = unpack(redis.call('HMGET', key, 'state', 'name', 'sweep'))
  if not state then
    -- No record: an id left in Jobs alone (or nothing at all) is taken out of the listing.
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', runsKey)
    results[i] = 'unknown'
  elseif FINAL[state] then
    redis.call('DEL', key, runsKey)
    redis.call('ZREM', KEYS[1], id)
    if sweep then
      forgetSweepIfDone(sweep)
    elseif name then
      redis.call('ZREM', namedKey(prefix, name), id)
    end
    results[i] = 'removed'
  else
    results[i] = state
  end
end
return results
