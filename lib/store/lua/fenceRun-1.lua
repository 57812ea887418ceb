--[[
  fenceRun: a run that JobManager gave up on (its host unreachable for too long; recorded
  interrupted, failed or cancelled, without an exit code) was found still there when the host
  answered again, and is killed (lib/backends/remote/reconcile.ts): its entry in job:<id>:runs
  says so. Its outcome becomes 'fenced' (the outcome it was given up with is kept as gaveUpAs),
  with the time it was killed, the time its host's watchdog had stopped it (if it had), and a
  note added to its reason. Marking it twice changes nothing.

  KEYS[1] job:<id>:runs
  ARGV[1] run   ARGV[2] now (ms)   ARGV[3] when the host stopped it (ms; '' if it had not)
  ARGV[4] the note added to its reason
  Returns: 1 when the entry says fenced; 0 when the run has no entry, or ended by itself (it
    succeeded, or has an exit code): not a run JobManager gave up on, so not one to fence
]]
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #entries, 1, -1 do
  local ok, entry = pcall(cjson.decode, entries[i])
  if ok and type(entry) == 'table' and tostring(entry.run) == ARGV[1] then
    if entry.outcome == 'fenced' then return 1 end
    if entry.outcome == 'succeeded' or (type(entry.exitCode) == 'string' and entry.exitCode ~= '') or type(entry.exitCode) == 'number' then return 0 end
    entry.gaveUpAs = entry.outcome
    entry.outcome = 'fenced'
    entry.fencedAt = tonumber(ARGV[2])
    if ARGV[3] ~= '' then entry.stoppedAt = tonumber(ARGV[3]) end
    entry.reason = (entry.reason or '') .. ARGV[4]
    redis.call('LSET', KEYS[1], i - 1, cjson.encode(entry))
    return 1
  end
end
return 0
