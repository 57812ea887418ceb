--[[
  noteDownloads: what became of a run's Downloads, on its job record (the field `downloads`), so
  that `show` and the web page say which failed and why, not only the log. The fetcher notes it
  after fetching, just before finishRun records the run's end; only for the job's current run
  while it is granted or running, so a late note about an older run changes nothing. Every
  fetch replaces the note: a run whose downloads all arrived removes it.

  KEYS[1] job:<id>
  ARGV[1] run   ARGV[2] JSON {run, failed: [{file, reason}]}, or '' when every download arrived
  Returns: 1 if noted, 0 if ignored
]]
local key = KEYS[1]
local state, run = unpack(redis.call('HMGET', key, 'state', 'run'))
if (state ~= 'granted' and state ~= 'running') or run ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', key, 'downloads')
else
  redis.call('HSET', key, 'downloads', ARGV[2])
end
return 1
