--[[
  relaunch: recovery found a job in Starting whose launch provably never happened (its
  launcher ended without starting that run). Give it a new run number under the new launcher.

  KEYS[1] Starting        KEYS[2] Events
  ARGV[1] key prefix      ARGV[2] now (ms)   ARGV[3] job id   ARGV[4] run that never started
  ARGV[5] new launcher epoch
  Returns: {id, run, attempt, spec JSON, location, job definition JSON}, or {} when the job moved on
]]
local prefix, now, id, oldRun, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jobKey = prefix .. 'job:' .. id
local state, run = unpack(redis.call('HMGET', jobKey, 'state', 'run'))
if state ~= 'granted' or run ~= oldRun or redis.call('SISMEMBER', KEYS[1], id) == 0 then return {} end
local newRun = redis.call('HINCRBY', jobKey, 'run', 1)
redis.call('HSET', jobKey, 'runlog', epoch, 'launchedAt', now)
local attempt, spec, location, raw = unpack(redis.call('HMGET', jobKey, 'attempt', 'spec', 'location', 'raw'))
return {id, newRun, attempt, spec, location, raw or ''}
