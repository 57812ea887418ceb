--[[
  relaunch: recovery found a granted job whose run provably never launched (it was taken from
  Granted_Queue by a starter that died, and every launcher that could have started it has ended
  without a line for that run). It gets a new run number and its launch payload (as in
  includes/grantFrom.lua, the job definition included on the same test), for the starter to
  launch at once.

  KEYS[1] Events   KEYS[2] job:<id>
  KEYS[3] key prefix (includes/keys.lua: sweep:<first>, whose spec a sweep's job shares)
  ARGV[1] now (ms)   ARGV[2] job id   ARGV[3] the run that never started
  Returns: the payload; 'cancelled' when it was cancelled meanwhile (the starter then records
  that it never started); or false when the job moved on
  Events: granted (reason: relaunched)
]]
-- @include keys

local id, oldRun = ARGV[2], ARGV[3]
local key = KEYS[2]
local state, run, attempt, spec, cancelRequested, where, sweep, params, name = unpack(redis.call('HMGET', key,
  'state', 'run', 'attempt', 'spec', 'cancelRequested', 'host', 'sweep', 'params', 'name'))
local home, row = key, ''
if not spec and sweep then
  home = sweepKey(KEYS[3], sweep)
  spec = redis.call('HGET', home, 'spec')
  row = '\nrow:' .. (params or '{}') .. '\nname:' .. (name or '')
end
if state ~= 'granted' or run ~= oldRun or not spec then return false end
if cancelRequested then return 'cancelled' end
local newRun = redis.call('HINCRBY', key, 'run', 1)
local raw = 'null'
if string.find(spec, '"value":"self.yaml"', 1, true) then raw = redis.call('HGET', home, 'raw') or 'null' end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', 100000, '*', 'job', id, 'state', 'granted', 'run', newRun, 'reason', 'relaunched: run ' .. oldRun .. ' never started')
return id .. '\n' .. newRun .. '\n' .. attempt .. '\n' .. (where or 'local') .. '\n' .. spec .. '\n' .. raw .. row
